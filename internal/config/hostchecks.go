package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// HostWarnings checks c against the machine it is checked on, for what `sluice run` there
// would fail on although the file is valid: an access log file whose directory does not
// exist or cannot be written, and a listener or admin address that cannot be bound now (in
// use, a privileged port without the capability, an address this host does not have).
// They are warnings, not errors: the config may be meant for another machine, and an
// address in use may be the running gateway's own. Formatted like [Warnings].
func HostWarnings(c *Config) []string {
	var p problems
	switch d := c.Log.Access; d {
	case "", "stdout", "stderr", "off":
	default:
		if msg := checkLogDir(d); msg != "" {
			p.add("log.access", "%s", msg)
		}
	}
	for i, l := range c.Listeners {
		if msg := checkBind(l.Address); msg != "" {
			p.add(fmt.Sprintf("listeners[%d].address", i), "%s", msg)
		}
	}
	if c.Admin.IsEnabled() {
		if msg := checkBind(c.Admin.Address); msg != "" {
			p.add("admin.address", "%s (the gateway still starts; metrics and the admin API are unavailable)", msg)
		}
	}
	return p.lines(c)
}

// checkLogDir says what would stop `sluice run` from opening the access log file path.
func checkLogDir(path string) string {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Sprintf("directory %q does not exist on this host: `sluice run` cannot open the access log; create it (mkdir -p %s)", dir, dir)
	case err != nil:
		return fmt.Sprintf("cannot check directory %q: %v", dir, err)
	case !st.IsDir():
		return fmt.Sprintf("%q is not a directory: `sluice run` cannot open the access log", dir)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Sprintf("%q is a directory, not a file", path)
	}
	if syscall.Access(dir, 2 /* W_OK */) != nil {
		if f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0); err == nil {
			f.Close() // the file exists and is writable: rotation by reopening needs the directory
			return fmt.Sprintf("directory %q is not writable by this user: the access log can be appended to, but not recreated after a rotation", dir)
		}
		return fmt.Sprintf("directory %q is not writable by this user: `sluice run` cannot create the access log", dir)
	}
	return ""
}

// checkBind tries to bind addr and says why it cannot be bound, "" when it can (or when the
// address asks for any free port).
func checkBind(addr string) string {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		ln.Close()
		return ""
	}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Sprintf("%q cannot be bound on this host now: in use (by a running gateway, it is fine)", addr)
	case errors.Is(err, syscall.EACCES):
		return fmt.Sprintf("%q cannot be bound on this host by this user: ports below 1024 need root or CAP_NET_BIND_SERVICE", addr)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Sprintf("%q cannot be bound on this host: it has no such address", addr)
	}
	return fmt.Sprintf("%q cannot be bound on this host: %v", addr, err)
}

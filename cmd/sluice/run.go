package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"sluice/internal/accesslog"
	"sluice/internal/config"
	"sluice/internal/config/source"
	"sluice/internal/demo"
	"sluice/internal/gateway"
	"sluice/internal/proclog"
)

// runner is one `sluice run`: the gateway, the logs it writes, and what a reload or a
// signal changes in them.
type runner struct {
	file           string // "" for the embedded demo config
	stdout, stderr io.Writer
	level          *slog.LevelVar // the process log's level: log.level of the serving config
	log            *slog.Logger
	access         *accesslog.Logger
	gw             *gateway.Gateway
	cluster        bool // cluster mode: the config comes from etcd (cluster.go)
}

const runSynopsis = "sluice run [FILE] [-demo-backend]   (FILE may also be given as -c FILE)"

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	flagged := fs.String("c", "", "config file (or give it as the argument); with none at all, the embedded demo config and echo backend")
	demoBackend := fs.Bool("demo-backend", false, "also start the demo echo backend on "+config.DemoBackendAddress+" (the examples/ configs use it)")
	pos, code, ok := parseFlags(fs, args, runSynopsis, stdout, stderr)
	if !ok {
		return code
	}
	file, err := configFile("run", *flagged, pos)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	var cfg *config.Config
	if file == "" {
		cfg, err = config.Default()
	} else {
		cfg, err = config.Load(file)
	}
	if err != nil {
		printConfigErr(stderr, err)
		return 1
	}
	r := &runner{file: file, stdout: stdout, stderr: stderr, level: new(slog.LevelVar)}
	r.level.Set(proclog.ParseLevel(cfg.Log.Level))
	r.log = proclog.New(stderr, r.level)
	if file == "" {
		r.log.Info("no config file given: serving the embedded demo config with a demo echo backend; give a file to serve your own (sluice run FILE)",
			"listen", config.DemoListenAddress, "demo_backend", config.DemoBackendAddress)
	}
	r.access, err = accesslog.Open(cfg.Log.Access, stdout, stderr)
	if err != nil {
		r.log.Error("cannot start", "err", err)
		return 1
	}
	defer r.access.Close()
	r.access.SetErrorLog(r.log.With("component", "accesslog")) // failed writes (lines lost)
	for _, w := range config.Warnings(cfg) {
		r.log.Warn("risky config setting", "warning", w)
	}
	if file == "" || *demoBackend {
		backend, err := demo.Serve(config.DemoBackendAddress)
		if err != nil {
			r.log.Error("cannot start the demo backend", "err", err)
			return 1
		}
		defer backend.Close()
		r.log.Info("demo echo backend started", "address", config.DemoBackendAddress)
	}
	b := currentBuild()
	r.gw = gateway.New(r.log, r.access)
	r.gw.SetVersion(b.Version)
	if cfg.Cluster != nil {
		return r.runCluster(cfg) // cluster.go
	}
	if err := r.gw.Apply(cfg); err != nil {
		r.log.Error("cannot start", "err", err)
		return 1
	}
	r.log.Info("sluice started", "version", b.Version, "config", cfgName(cfg))
	if file == "" {
		fmt.Fprintf(stderr, "\nSluice is serving the embedded demo config. Try:\n  curl http://%s/hello\n  curl http://%s/api/users?id=7\n\n",
			config.DemoListenAddress, config.DemoListenAddress)
	}
	return r.serve()
}

// serve reloads on file changes and SIGHUP, reopens the access log on SIGUSR1, and drains
// on SIGTERM or SIGINT.
func (r *runner) serve() int {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var changes <-chan struct{}
	if r.file != "" && !r.cluster {
		changes = source.File{Path: r.file}.Watch(ctx)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	for {
		select {
		case <-changes:
			r.reload("file changed")
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				if r.file == "" || r.cluster {
					r.log.Warn("SIGHUP ignored: running on the embedded config, or in cluster mode (the config comes from etcd; restart to change the node's file)")
					continue
				}
				r.reload("SIGHUP")
			case syscall.SIGUSR1:
				r.reopen()
			default:
				r.shutdown(sig)
				return 0
			}
		}
	}
}

// reload loads the file and applies it with its log section: the access log destination is
// opened first (a reload whose access log cannot be opened is refused as a whole), the
// gateway is rebuilt, and only then do the log level and the access log switch. The access
// log file is reopened even when its path did not change, so a reload also ends a rotation.
func (r *runner) reload(why string) {
	cfg, err := config.Load(r.file)
	var out *accesslog.Output
	if err == nil {
		out, err = accesslog.OpenOutput(cfg.Log.Access, r.stdout, r.stderr)
		if err != nil {
			err = fmt.Errorf("log.access: %w", err)
		}
	}
	if err != nil {
		r.gw.ReloadFailed(err) // a config that never reaches Apply; Apply counts its own failures
		r.rejected(why, err)
		return
	}
	if err := r.gw.Apply(cfg); err != nil {
		out.Close()
		r.rejected(why, err)
		return
	}
	r.access.SetOutput(out)
	// Announced at the level in force before the reload, then the new level applies.
	r.log.Info("config reloaded", "trigger", why, "version", short(cfg.Hash), "log_level", cfg.Log.Level, "access_log", cfg.Log.Access)
	r.level.Set(proclog.ParseLevel(cfg.Log.Level))
	for _, w := range config.Warnings(cfg) {
		r.log.Warn("risky config setting", "warning", w)
	}
}

func (r *runner) rejected(why string, err error) {
	keep := ""
	if cur := r.gw.Current(); cur != nil {
		keep = short(cur.Config.Hash)
	}
	r.log.Error("config reload rejected; the previous config keeps serving", "trigger", why, "serving_version", keep, "err", err.Error())
}

// reopen reopens the access log file (SIGUSR1, after a log rotation moved it away).
func (r *runner) reopen() {
	err := r.access.Reopen()
	switch {
	case errors.Is(err, accesslog.ErrNotAFile):
		r.log.Info("SIGUSR1: the access log is not a file; nothing to reopen", "access_log", r.access.Dest())
	case err != nil:
		r.log.Error("SIGUSR1: cannot reopen the access log; lines still go to the old file", "access_log", r.access.Dest(), "err", err)
	default:
		r.log.Info("access log reopened", "trigger", "SIGUSR1", "access_log", r.access.Dest())
	}
}

func (r *runner) shutdown(sig os.Signal) {
	grace := config.DefaultShutdownGrace.D()
	if cur := r.gw.Current(); cur != nil {
		grace = cur.Config.ShutdownGraceValue()
	}
	r.log.Info("shutting down: draining in-flight requests", "signal", sig.String(), "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	err := r.gw.Shutdown(sctx)
	cancel()
	if err != nil {
		r.log.Warn("shutdown grace ended with requests still running; they were cut", "err", err)
	}
	r.log.Info("stopped")
}

func cfgName(cfg *config.Config) string {
	if cfg.File == "" {
		return "embedded default"
	}
	return cfg.File
}

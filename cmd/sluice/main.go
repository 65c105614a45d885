// Command sluice is the Sluice API gateway.
//
//	sluice run [-c FILE]      serve (without -c: the embedded demo config and echo backend)
//	sluice validate -c FILE   check a config; exit 1 listing every problem
//	sluice probe URL|-c FILE  measure backends' keep-alive behaviour (see docs/probe.md)
//	sluice version            print the version
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
	"strings"
	"syscall"

	"sluice/internal/accesslog"
	"sluice/internal/config"
	"sluice/internal/config/source"
	"sluice/internal/demo"
	"sluice/internal/gateway"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "probe":
		return cmdProbe(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "sluice %s\n", version)
		return 0
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  sluice run [-c FILE] [-demo-backend]
                             serve; without -c, the embedded demo config and a demo echo backend
  sluice validate -c FILE    check a config file and list every problem
  sluice probe URL           measure a backend's keep-alive behaviour (idle timeout, request limit)
  sluice probe -c FILE       probe every upstream target of a config; exit 1 on risky keepalive settings
  sluice version             print the version
`)
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "", "config file to check")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *file == "" {
		fmt.Fprintln(stderr, "sluice validate: -c FILE is required")
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		printConfigErr(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d listeners, %d upstreams, %d routes)\n", *file,
		len(cfg.Listeners), len(cfg.Upstreams), len(cfg.Routes))
	for _, w := range config.Warnings(cfg) {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	return 0
}

func printConfigErr(w io.Writer, err error) {
	var multi interface{ Unwrap() []error }
	if errors.As(err, &multi) {
		errs := multi.Unwrap()
		fmt.Fprintf(w, "invalid config: %d problem(s):\n", len(errs))
		for _, e := range errs {
			fmt.Fprintf(w, "  %s\n", e)
		}
		return
	}
	fmt.Fprintf(w, "invalid config: %s\n", err)
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "", "config file (default: the embedded demo config)")
	demoBackend := fs.Bool("demo-backend", false, "also start the demo echo backend on "+config.DemoBackendAddress+" (the examples/ configs use it)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var cfg *config.Config
	var err error
	if *file == "" {
		cfg, err = config.Default()
	} else {
		cfg, err = config.Load(*file)
	}
	if err != nil {
		printConfigErr(stderr, err)
		return 1
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: parseLevel(cfg.Log.Level)}))
	access, err := openAccessLog(cfg.Log.Access, stdout, stderr)
	if err != nil {
		log.Error("cannot open access log", "err", err)
		return 1
	}
	defer access.Close()
	for _, w := range config.Warnings(cfg) {
		log.Warn("risky config setting", "warning", w)
	}

	if *file == "" || *demoBackend {
		backend, err := demo.Serve(config.DemoBackendAddress)
		if err != nil {
			log.Error("cannot start the demo backend", "err", err)
			return 1
		}
		defer backend.Close()
		log.Info("demo echo backend started", "address", config.DemoBackendAddress)
	}

	gw := gateway.New(log, access)
	gw.SetVersion(version)
	if err := gw.Apply(cfg); err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	log.Info("sluice started", "version", version, "config", cfgName(cfg))
	if *file == "" {
		fmt.Fprintf(stderr, "\nSluice is serving the embedded demo config. Try:\n  curl http://%s/hello\n  curl http://%s/api/users?id=7\n\n",
			config.DemoListenAddress, config.DemoListenAddress)
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var changes <-chan struct{}
	if *file != "" {
		changes = source.File{Path: *file}.Watch(ctx)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	for {
		select {
		case <-changes:
			reload(gw, *file, "file changed", log)
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if *file == "" {
					log.Warn("SIGHUP ignored: running on the embedded config")
					continue
				}
				reload(gw, *file, "SIGHUP", log)
				continue
			}
			grace := config.DefaultShutdownGrace.D()
			if cur := gw.Current(); cur != nil {
				grace = cur.Config.ShutdownGraceValue()
			}
			log.Info("shutting down: draining in-flight requests", "signal", sig.String(), "grace", grace.String())
			sctx, cancel := context.WithTimeout(context.Background(), grace)
			err := gw.Shutdown(sctx)
			cancel()
			if err != nil {
				log.Warn("shutdown grace ended with requests still running; they were cut", "err", err)
			}
			log.Info("stopped")
			return 0
		}
	}
}

func reload(gw *gateway.Gateway, file, why string, log *slog.Logger) {
	cfg, err := config.Load(file)
	if err == nil {
		err = gw.Apply(cfg)
	} else {
		gw.ReloadFailed(err) // a config that does not load never reaches Apply, which counts its own failures
	}
	if err != nil {
		keep := ""
		if cur := gw.Current(); cur != nil {
			keep = cur.Config.Hash
		}
		if len(keep) > 12 {
			keep = keep[:12]
		}
		log.Error("config reload rejected; the previous config keeps serving", "trigger", why, "serving_version", keep, "err", err.Error())
		return
	}
	log.Info("config reloaded", "trigger", why, "version", cfg.Hash[:12])
	for _, w := range config.Warnings(cfg) {
		log.Warn("risky config setting", "warning", w)
	}
}

func cfgName(cfg *config.Config) string {
	if cfg.File == "" {
		return "embedded default"
	}
	return cfg.File
}

func parseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

func openAccessLog(dest string, stdout, stderr io.Writer) (*accesslog.Logger, error) {
	switch dest {
	case "", "stdout":
		return accesslog.New(stdout), nil
	case "stderr":
		return accesslog.New(stderr), nil
	case "off":
		return nil, nil
	}
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return accesslog.New(f), nil
}

// Command serfd is the cluster membership and event daemon: Serf's gossip,
// events and handlers, run as a systemd service. See serfd(8).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/serfd/serfd/daemon"
)

// exitConfig is EX_CONFIG from sysexits.h: the configuration is invalid.
// serfd.service does not restart on it (RestartPreventExitStatus=78).
const exitConfig = 78

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "migrate" {
		return migrate(args[1:])
	}
	fs := flag.NewFlagSet("serfd", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: serfd [-config FILE] [-check] [-version]\n"+
			"       serfd migrate SERF.json    print the HCL equivalent of a Serf agent's JSON configuration\n\n"+
			"Runs in the foreground; systemd owns the lifecycle. Also reads config.d/*.hcl and *.json beside FILE\n"+
			"(a *.json file, or a FILE ending in .json, is a Serf agent's JSON configuration).\n"+
			"SIGTERM leaves the cluster gracefully and exits 0. SIGHUP reloads the configuration.\n\n")
		fs.PrintDefaults()
	}
	configPath := fs.String("config", daemon.DefaultConfigPath, "main configuration `file`")
	check := fs.Bool("check", false, "validate the configuration, print every problem and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "serfd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *showVersion {
		fmt.Printf("serfd %s\n", version)
		return 0
	}
	if *check {
		cfg, err := daemon.LoadConfig(*configPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return exitConfig
		}
		for _, w := range cfg.Warnings {
			fmt.Fprintf(os.Stderr, "warning: %s\n", w)
		}
		fmt.Printf("configuration OK: %d file(s) read\n", len(cfg.Files))
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	err := daemon.Run(ctx, daemon.Options{ConfigPath: *configPath, Stderr: os.Stderr, Reload: hup, Version: version})
	if err != nil {
		var ce *daemon.ConfigError
		if errors.As(err, &ce) {
			fmt.Fprintln(os.Stderr, ce)
			fmt.Fprintln(os.Stderr, "serfd: configuration is invalid; not starting")
			return exitConfig
		}
		fmt.Fprintf(os.Stderr, "serfd: %v\n", err)
		return 1
	}
	return 0
}

// migrate is `serfd migrate SERF.json`: the HCL goes to stdout, problems
// and instructions to stderr.
func migrate(args []string) int {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(os.Stderr, "usage: serfd migrate SERF.json   (prints the equivalent config.hcl on stdout)")
		return 2
	}
	note, err := daemon.Migrate(args[0], os.Stdout)
	var ce *daemon.ConfigError
	switch {
	case errors.As(err, &ce):
		fmt.Fprintln(os.Stderr, ce)
		fmt.Fprintln(os.Stderr, "serfd migrate: fix these in the JSON first; nothing written")
		return exitConfig
	case err != nil:
		fmt.Fprintf(os.Stderr, "serfd migrate: %v\n", err)
		return 1
	}
	if note != "" {
		fmt.Fprintln(os.Stderr, note)
	}
	return 0
}

package config

import _ "embed"

// DemoListenAddress is where the embedded default configuration listens.
const DemoListenAddress = "127.0.0.1:8080"

// DemoBackendAddress is the target of the embedded default configuration; `sluice run`
// starts a built-in echo backend there when it uses [Default].
const DemoBackendAddress = "127.0.0.1:9901"

// DefaultFile is the file name given to the embedded default configuration.
const DefaultFile = "embedded:default.yaml"

//go:embed default.yaml
var defaultYAML []byte

// Default parses the embedded default configuration: a working demo that proxies
// [DemoListenAddress] to [DemoBackendAddress].
func Default() (*Config, error) { return Parse(DefaultFile, defaultYAML) }

// Package consumerrestriction is the consumer-restriction plugin: a route that requires its
// consumer (identified by an auth plugin) to be in some groups, or not in others.
package consumerrestriction

import (
	"errors"
	"slices"

	"sluice/internal/plugin"
	"sluice/internal/reason"
)

func init() {
	plugin.Register(plugin.Kind{Name: Name, Stage: plugin.StageAuthorize, New: New})
}

// Name is the plugin's name in configs.
const Name = "consumer-restriction"

// Config is consumer-restriction's config. At least one list is required.
type Config struct {
	// AllowGroups: the consumer must be in at least one of these groups. Omitted: any.
	AllowGroups []string `yaml:"allow_groups"`
	// DenyGroups: a consumer in any of these groups is refused, even if allowed. Omitted: none.
	DenyGroups []string `yaml:"deny_groups"`
	// AllowConsumers: the consumer must be one of these (by name), or in AllowGroups when
	// both are set. Omitted: any.
	AllowConsumers []string `yaml:"allow_consumers"`
}

// Restriction is one consumer-restriction instance.
type Restriction struct {
	c                    Config
	noConsumer, notAllow *reason.Error
}

// New builds a consumer-restriction instance.
func New(b *plugin.Build) (any, error) {
	var c Config
	if err := b.Decode(&c); err != nil {
		return nil, err
	}
	if len(c.AllowGroups)+len(c.DenyGroups)+len(c.AllowConsumers) == 0 {
		return nil, b.Errorf("", "write allow_groups, deny_groups or allow_consumers")
	}
	for i, name := range c.AllowConsumers {
		if !slices.ContainsFunc(b.Consumers(), func(cs *plugin.Consumer) bool { return cs.Name == name }) {
			return nil, b.Errorf("allow_consumers", "allow_consumers[%d]: no consumer named %q", i, name)
		}
	}
	return &Restriction{c: c,
		noConsumer: reason.New(401, reason.AuthMissing, "", errors.New("no consumer identified before consumer-restriction")),
		notAllow:   reason.New(403, reason.ConsumerForbidden, "", errors.New("consumer not allowed on this route")),
	}, nil
}

// Request refuses a request without a consumer (401) or with one the lists exclude (403).
func (p *Restriction) Request(r *plugin.Request) error {
	c := r.Consumer()
	if c == nil {
		return p.noConsumer
	}
	for _, g := range p.c.DenyGroups {
		if c.InGroup(g) {
			return p.notAllow
		}
	}
	if len(p.c.AllowGroups) == 0 && len(p.c.AllowConsumers) == 0 {
		return nil
	}
	if slices.Contains(p.c.AllowConsumers, c.Name) {
		return nil
	}
	for _, g := range p.c.AllowGroups {
		if c.InGroup(g) {
			return nil
		}
	}
	return p.notAllow
}

var _ plugin.RequestFilter = (*Restriction)(nil)

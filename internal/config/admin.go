package config

// DefaultAdminAddress is where the admin listener binds unless told otherwise.
const DefaultAdminAddress = "127.0.0.1:9180"

func defaultAdmin(a *Admin) {
	setIfNil(&a.Enabled, true)
	setIfZero(&a.Address, DefaultAdminAddress)
}

// validateAdmin checks the admin block. Filled in by the observability work.
func (c *Config) validateAdmin(p *problems) {}

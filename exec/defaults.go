package exec

// DefaultOptions is Options with every default filled in: what New uses
// for each field left zero. Callers start from it and set what they
// configure.
func DefaultOptions() Options {
	return Options{
		Workers:       defaultWorkers,
		Queue:         defaultQueue,
		Timeout:       defaultTimeout,
		KillGrace:     defaultKillGrace,
		DrainTimeout:  defaultDrainTimeout,
		OutputLimit:   defaultOutputLimit,
		ResponseLimit: defaultOutputLimit,
		Path:          defaultPath,
	}
}

package exec

// Renders returns how many Exec calls have rendered so far.
func Renders() int64 { return renders.Load() }

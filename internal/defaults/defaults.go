// Package defaults holds the one rule by which the options structs of
// refonte-batch fill in their defaults: a number or a duration that is zero
// or negative means "unset". (Package refonte, which imports nothing from
// internal/, keeps its own.)
package defaults

// Number is what an option with a numeric default can be: an integer, a
// float or a time.Duration.
type Number interface {
	~int | ~int32 | ~int64 | ~float64
}

// Positive returns v when it is above zero, else def.
func Positive[T Number](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

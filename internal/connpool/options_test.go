package connpool

import (
	"reflect"
	"testing"
)

// notIdentity lists the fields of Options that Identity leaves out, with the reason.
var notIdentity = map[string]string{
	"Dial": "a function cannot be compared; the gateway never sets it",
	"TLS":  "a pointer: TLSID stands for it",
	"ALPN": "an interface (the target's HTTP/2 pool); the gateway keys pools by protocol (h2Identity)",
}

// TestIdentityCoversOptions: a field added to Options must be a decision, not an accident.
// Each field either changes the Identity when it changes (so a reload with a new value
// builds a new pool) and gives the same Identity for equal values set independently (so a
// reload with the same value keeps the pool: a pointer compared by address would not), or
// is listed in notIdentity.
func TestIdentityCoversOptions(t *testing.T) {
	typ := reflect.TypeFor[Options]()
	fields := 0
	for i := range typ.NumField() {
		f := typ.Field(i)
		if _, ok := notIdentity[f.Name]; ok {
			continue
		}
		fields++
		var base, changed, again Options
		setNonZero(t, f, reflect.ValueOf(&changed).Elem().Field(i))
		setNonZero(t, f, reflect.ValueOf(&again).Elem().Field(i))
		if changed.Identity() == base.Identity() {
			t.Errorf("Options.%s: changing it does not change the Identity; add it to Identity or to notIdentity", f.Name)
		}
		if changed.Identity() != again.Identity() {
			t.Errorf("Options.%s: equal values give different Identities (compared by address?)", f.Name)
		}
	}
	if n := reflect.TypeFor[Identity]().NumField(); n != fields {
		t.Errorf("Identity has %d fields, Options %d that are not in notIdentity", n, fields)
	}
	for name := range notIdentity {
		if _, ok := typ.FieldByName(name); !ok {
			t.Errorf("notIdentity lists %s, which Options does not have", name)
		}
	}
}

// setNonZero sets v, field f of an Options, to a value other than its zero value; each call
// makes a new value (a new pointer, a new function).
func setNonZero(t *testing.T, f reflect.StructField, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Float64:
		v.SetFloat(0.5)
	case reflect.String:
		v.SetString("x")
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		setNonZero(t, f, p.Elem())
		v.Set(p)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Field(i).CanSet() {
				setNonZero(t, f, v.Field(i))
			}
		}
	case reflect.Func:
		ft := v.Type()
		v.Set(reflect.MakeFunc(ft, func([]reflect.Value) []reflect.Value {
			out := make([]reflect.Value, ft.NumOut())
			for i := range out {
				out[i] = reflect.Zero(ft.Out(i))
			}
			return out
		}))
	default:
		t.Fatalf("Options.%s is a %s: teach setNonZero to set it", f.Name, v.Kind())
	}
}

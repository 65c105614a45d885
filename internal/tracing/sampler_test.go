package tracing

import (
	"math"
	"slices"
	"testing"

	"sluice/internal/config"
)

// TestSamplerRatio: over 20,000 random trace ids the ratio samplers record their share
// (within 1.5 points), 0 none and 1 all.
func TestSamplerRatio(t *testing.T) {
	for _, ratio := range []float64{0, 0.01, 0.25, 0.5, 1} {
		s, ok := NewSampler(SamplerRatio, ratio)
		if !ok {
			t.Fatal("traceidratio unknown")
		}
		const n = 20000
		got := 0
		for range n {
			if s.Sample(NewTraceID(), Parent{}, false) {
				got++
			}
		}
		share := float64(got) / n
		if math.Abs(share-ratio) > 0.015 || ratio == 0 && got != 0 || ratio == 1 && got != n {
			t.Errorf("ratio %v sampled %v", ratio, share)
		}
	}
}

// TestSamplerParent: the parent-based samplers follow a valid parent's sampled flag and
// fall back to their root rule; the others ignore the parent.
func TestSamplerParent(t *testing.T) {
	sampled, unsampled := Parent{Flags: FlagSampled}, Parent{}
	// A trace id that the ratio 0.5 samples (last 8 bytes small) and one it does not.
	var low, high TraceID
	high[8] = 0xff
	for _, tc := range []struct {
		sampler   string
		ratio     float64
		t         TraceID
		parent    Parent
		hasParent bool
		want      bool
	}{
		{SamplerParentRatio, 0, low, sampled, true, true},
		{SamplerParentRatio, 1, low, unsampled, true, false},
		{SamplerParentRatio, 0.5, low, Parent{}, false, true},
		{SamplerParentRatio, 0.5, high, Parent{}, false, false},
		{SamplerParentOn, 0, low, Parent{}, false, true},
		{SamplerParentOn, 0, low, unsampled, true, false},
		{SamplerParentOff, 0, low, Parent{}, false, false},
		{SamplerParentOff, 0, low, sampled, true, true},
		{SamplerRatio, 1, low, unsampled, true, true},
		{SamplerRatio, 0, low, sampled, true, false},
		{SamplerAlwaysOn, 0, low, unsampled, true, true},
		{SamplerAlwaysOff, 1, low, sampled, true, false},
	} {
		s, ok := NewSampler(tc.sampler, tc.ratio)
		if !ok {
			t.Fatalf("%s unknown", tc.sampler)
		}
		if got := s.Sample(tc.t, tc.parent, tc.hasParent); got != tc.want {
			t.Errorf("%s(%v) with parent %+v (has %v), trace %x: %v, want %v", tc.sampler, tc.ratio, tc.parent, tc.hasParent, tc.t, got, tc.want)
		}
	}
	if _, ok := NewSampler("sometimes", 1); ok {
		t.Error("unknown sampler accepted")
	}
}

// TestSamplerNamesMatchConfig: the samplers config validates are the ones this package
// builds, and the defaults agree.
func TestSamplerNamesMatchConfig(t *testing.T) {
	if !slices.Equal(slices.Sorted(slices.Values(Samplers)), slices.Sorted(slices.Values(config.TracingSamplers))) {
		t.Errorf("tracing.Samplers %v, config.TracingSamplers %v", Samplers, config.TracingSamplers)
	}
	if DefaultSamplerName != config.DefaultTracingSampler || DefaultSamplerRatio != config.DefaultTracingRatio {
		t.Error("defaults differ from config's")
	}
	for _, name := range Samplers {
		if _, ok := NewSampler(name, 0.5); !ok {
			t.Errorf("%s not accepted", name)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	s, _ := NewSampler(SamplerParentRatio, 0.01)
	b.ReportAllocs()
	for b.Loop() {
		id := NewTraceID()
		s.Sample(id, Parent{}, false)
		_ = NewSpanID()
	}
}

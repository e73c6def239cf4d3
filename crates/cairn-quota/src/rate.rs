//! A rate over sampled time windows, measured as Kafka's `Rate` over a `SampledStat` measures it,
//! so that throttle times match what Kafka clients see from Kafka brokers.
//!
//! The sum of the retained samples is divided by the elapsed time since the oldest sample began,
//! but never by less than `samples - 1` whole windows: a fresh client is not judged on its first
//! second alone. A sample is dropped once no event has landed in it for `samples` windows.

/// How rates are sampled (Kafka's `quota.window.num` and `quota.window.size.seconds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    pub samples: u32,
    pub window_ms: i64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            samples: 11,
            window_ms: 1000,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    start_ms: i64,
    last_event_ms: i64,
    value: f64,
}

impl Sample {
    fn new(now: i64) -> Sample {
        Sample {
            start_ms: now,
            last_event_ms: now,
            value: 0.0,
        }
    }
}

/// A rate per second of recorded values.
#[derive(Clone, Debug, Default)]
pub struct Rate {
    samples: Vec<Sample>,
    current: usize,
}

impl Rate {
    pub fn record(&mut self, cfg: WindowConfig, value: f64, now: i64) {
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now));
        }
        if now - self.samples[self.current].start_ms >= cfg.window_ms {
            // One slot more than `samples`: the oldest may still overlap the measured window.
            let slots = cfg.samples.max(1) as usize + 1;
            self.current = (self.current + 1) % slots;
            if self.current >= self.samples.len() {
                self.samples.push(Sample::new(now));
            } else {
                self.samples[self.current] = Sample::new(now);
            }
        }
        let s = &mut self.samples[self.current];
        s.value += value;
        s.last_event_ms = now;
    }

    fn purge(&mut self, cfg: WindowConfig, now: i64) {
        let expire = cfg.samples.max(1) as i64 * cfg.window_ms;
        for s in &mut self.samples {
            if now - s.last_event_ms >= expire {
                *s = Sample::new(now);
            }
        }
    }

    /// The span in milliseconds the rate is taken over.
    pub fn window_size(&mut self, cfg: WindowConfig, now: i64) -> i64 {
        self.purge(cfg, now);
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now));
        }
        let oldest = self.samples.iter().map(|s| s.start_ms).min().unwrap_or(now);
        let mut elapsed = now - oldest;
        let full = elapsed / cfg.window_ms.max(1);
        let min_full = cfg.samples.max(1) as i64 - 1;
        if full < min_full {
            elapsed += (min_full - full) * cfg.window_ms;
        }
        elapsed.max(1)
    }

    /// Recorded value per second.
    pub fn measure(&mut self, cfg: WindowConfig, now: i64) -> f64 {
        self.purge(cfg, now);
        let sum: f64 = self.samples.iter().map(|s| s.value).sum();
        sum / (self.window_size(cfg, now) as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: WindowConfig = WindowConfig {
        samples: 11,
        window_ms: 1000,
    };

    #[test]
    fn a_fresh_rate_is_taken_over_at_least_samples_minus_one_windows() {
        let mut r = Rate::default();
        r.record(CFG, 1000.0, 0);
        // 1000 over 10 s, not over the 0 ms that have passed.
        assert_eq!(r.window_size(CFG, 0), 10_000);
        assert!((r.measure(CFG, 0) - 100.0).abs() < 1e-9);
        assert_eq!(r.window_size(CFG, 500), 10_500);
    }

    #[test]
    fn steady_recording_measures_the_true_rate() {
        let mut r = Rate::default();
        // 100 units every 100 ms for 30 s: 1000 per second.
        for i in 0..300 {
            r.record(CFG, 100.0, i * 100);
        }
        let m = r.measure(CFG, 29_999);
        assert!((m - 1000.0).abs() < 60.0, "{m}");
    }

    #[test]
    fn samples_without_events_expire() {
        let mut r = Rate::default();
        r.record(CFG, 5000.0, 0);
        assert!(r.measure(CFG, 10_999) > 0.0);
        assert_eq!(r.measure(CFG, 11_000), 0.0);
    }

    #[test]
    fn the_ring_keeps_samples_plus_one_slots() {
        let mut r = Rate::default();
        for i in 0..100 {
            r.record(CFG, 1.0, i * 1000);
        }
        assert_eq!(r.samples.len(), 12);
    }
}

//! A jittered periodic timer: each interval is the period ±20 %, uniformly, so that sampling
//! does not lock step with periodic behaviour in the target (such as the 5 ms switch
//! interval) while the mean rate stays exact.

use std::time::{Duration, Instant};

pub struct Timer {
    period: Duration,
    next: Instant,
    rng: u64,
    /// Ticks that came more than one period late.
    pub late: u64,
}

impl Timer {
    pub fn new(rate_hz: f64) -> Timer {
        let seed = Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
        Timer {
            period: Duration::from_secs_f64(1.0 / rate_hz),
            next: Instant::now(),
            rng: seed | 1,
            late: 0,
        }
    }

    /// A uniform number in [0.8, 1.2) (xorshift64*).
    fn jitter(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        0.8 + 0.4 * (r as f64 / (1u64 << 53) as f64)
    }

    /// Sleeps until the next tick; a tick more than a period late is counted and skipped.
    pub fn wait(&mut self) {
        let jitter = self.jitter();
        self.next += self.period.mul_f64(jitter);
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        } else if now - self.next > self.period {
            self.late += 1;
            self.next = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_twenty_percent_and_averages_one() {
        let mut t = Timer::new(1000.0);
        let draws: Vec<f64> = (0..10_000).map(|_| t.jitter()).collect();
        assert!(draws.iter().all(|&j| (0.8..1.2).contains(&j)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
    }
}

//! Per-call budgets and the store state that enforces the memory cap.

use std::time::Duration;

use wasmtime::ResourceLimiter;

/// The budget of one call. A batch call of `n` rows gets `n` times the per-call budget, capped at
/// `max_batch_deadline`, so one slow row fails a request but a large batch is not cut short.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Wall-clock deadline of a single-row call (enforced by epoch interruption).
    pub deadline: Duration,
    /// Longest a batch call may run, whatever its row count.
    pub max_batch_deadline: Duration,
    /// Fuel (roughly, WebAssembly instructions) a single-row call may burn.
    pub fuel_per_call: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(10),
            max_batch_deadline: Duration::from_secs(60),
            fuel_per_call: 10_000_000,
        }
    }
}

impl Limits {
    /// The deadline for a call covering `units` rows.
    pub fn deadline(&self, units: u64) -> Duration {
        let scaled = self
            .deadline
            .saturating_mul(u32::try_from(units.max(1)).unwrap_or(u32::MAX));
        if units > 1 {
            scaled.min(self.max_batch_deadline.max(self.deadline))
        } else {
            scaled
        }
    }
}

/// What each store carries: the memory cap and whether it was hit during the current call, so a
/// trap that follows a refused `memory.grow` is reported as the memory cap rather than a panic.
pub(crate) struct StoreState {
    max_memory: usize,
    pub(crate) memory_denied: bool,
    pub(crate) tick: Duration,
}

impl StoreState {
    pub(crate) fn new(max_memory: usize, tick: Duration) -> Self {
        Self {
            max_memory,
            memory_denied: false,
            tick,
        }
    }
}

impl ResourceLimiter for StoreState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.memory_denied = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a transform has no reason for more than a few.
        Ok(desired <= 100_000)
    }
}

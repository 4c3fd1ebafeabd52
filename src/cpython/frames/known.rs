//! Stacks read before, by what the walk found: a thread whose frames run the same code at
//! the same instructions as at an earlier tick gets that tick's [`Stack`] again, the same
//! allocation, so that a deep stack that has not changed costs no frame built and no name
//! copied, and [`crate::model::StackTable`] knows it by its address without hashing it.
//!
//! What the walk found (each frame's code object and instruction) names the frames only
//! while every code object it names still holds what was read for it: [`Known::forget`] is
//! called whenever the code cache replaces or drops an entry. Bounded by
//! [`MAX_KNOWN_STACKS`] stacks and [`MAX_KNOWN_FRAMES`] frames: past either it starts again.

use foldhash::HashMap;

use super::walk::Found;
use crate::model::Stack;

pub(super) const MAX_KNOWN_STACKS: usize = 4096;
pub(super) const MAX_KNOWN_FRAMES: usize = 1 << 16;

#[derive(Default)]
pub(super) struct Known {
    /// Innermost frame first, as the walk finds them.
    stacks: HashMap<Vec<Found>, Stack>,
    frames: usize,
}

impl Known {
    pub fn get(&self, found: &[Found]) -> Option<&Stack> {
        self.stacks.get(found)
    }

    pub fn insert(&mut self, found: &[Found], stack: Stack) {
        if self.stacks.len() >= MAX_KNOWN_STACKS || self.frames + found.len() > MAX_KNOWN_FRAMES {
            self.forget();
        }
        if found.len() > MAX_KNOWN_FRAMES {
            return;
        }
        self.frames += found.len();
        self.stacks.insert(found.to_vec(), stack);
    }

    pub fn forget(&mut self) {
        self.stacks.clear();
        self.frames = 0;
    }
}

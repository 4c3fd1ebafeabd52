use std::collections::HashMap;

/// One Python frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Frame {
    pub function: String,
    pub file: String,
    pub line: u32,
}

/// Index of an interned stack in a [`StackTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StackId(pub u32);

/// Distinct stacks, each stored once: memory grows with distinct stacks, not with run length.
/// A stack lists frames outermost first.
#[derive(Debug, Default)]
pub struct StackTable {
    stacks: Vec<Vec<Frame>>,
    index: HashMap<Vec<Frame>, StackId>,
}

impl StackTable {
    pub fn intern(&mut self, frames: Vec<Frame>) -> StackId {
        if let Some(&id) = self.index.get(&frames) {
            return id;
        }
        let id = StackId(self.stacks.len() as u32);
        self.stacks.push(frames.clone());
        self.index.insert(frames, id);
        id
    }

    pub fn get(&self, id: StackId) -> &[Frame] {
        &self.stacks[id.0 as usize]
    }

    pub fn len(&self) -> usize {
        self.stacks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stacks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(f: &str) -> Frame {
        Frame {
            function: f.into(),
            file: "app.py".into(),
            line: 1,
        }
    }

    #[test]
    fn interning_returns_one_id_per_distinct_stack() {
        let mut table = StackTable::default();
        let a = table.intern(vec![frame("main"), frame("work")]);
        let b = table.intern(vec![frame("main")]);
        let a2 = table.intern(vec![frame("main"), frame("work")]);
        assert_eq!(a, a2);
        assert_ne!(a, b);
        assert_eq!(table.len(), 2);
        assert_eq!(table.get(a)[1].function, "work");
    }
}

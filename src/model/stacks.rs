use foldhash::HashMap;

/// The most characters of a function or file name (or a thread name) gilscope keeps: longer
/// ones, which only hostile or generated code has, are cut there and end in `…`, so that one
/// name cannot blow up every report it appears in.
pub const MAX_NAME_CHARS: usize = 1024;

/// One Python frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Frame {
    pub function: String,
    pub file: String,
    pub line: u32,
}

impl Frame {
    /// This frame with its names cut to [`MAX_NAME_CHARS`].
    pub fn bounded(self) -> Frame {
        Frame {
            function: bounded_name(self.function),
            file: bounded_name(self.file),
            line: self.line,
        }
    }
}

/// `name` cut to [`MAX_NAME_CHARS`] characters, the last of them `…`, when longer.
pub fn bounded_name(name: String) -> String {
    match name.char_indices().nth(MAX_NAME_CHARS) {
        None => name,
        Some(_) => {
            let end = name
                .char_indices()
                .nth(MAX_NAME_CHARS - 1)
                .map_or(0, |(i, _)| i);
            let mut cut = name[..end].to_string();
            cut.push('…');
            cut
        }
    }
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

    #[test]
    fn long_names_are_cut_with_an_ellipsis() {
        assert_eq!(bounded_name("short".into()), "short");
        let exact = "é".repeat(MAX_NAME_CHARS);
        assert_eq!(bounded_name(exact.clone()), exact);
        let cut = bounded_name("é".repeat(MAX_NAME_CHARS + 1));
        assert_eq!(cut.chars().count(), MAX_NAME_CHARS);
        assert!(cut.ends_with("é…"), "{}", &cut[cut.len() - 8..]);
        let frame = frame(&"x".repeat(5000)).bounded();
        assert_eq!(frame.function.chars().count(), MAX_NAME_CHARS);
        assert_eq!(frame.file, "app.py");
    }
}

use std::sync::Arc;

use foldhash::HashMap;

/// The most characters of a function or file name (or a thread name) gilscope keeps: longer
/// ones, which only hostile or generated code has, are cut there and end in `…`, so that one
/// name cannot blow up every report it appears in.
pub const MAX_NAME_CHARS: usize = 1024;

/// One Python frame. Its names are shared: every frame of one code object points to the
/// same two strings, so that copying a frame (the stack reader does for every frame of every
/// sample) allocates nothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Frame {
    pub function: Arc<str>,
    pub file: Arc<str>,
    pub line: u32,
}

impl Frame {
    pub fn new(function: impl Into<Arc<str>>, file: impl Into<Arc<str>>, line: u32) -> Frame {
        Frame {
            function: function.into(),
            file: file.into(),
            line,
        }
    }

    /// This frame with its names cut to [`MAX_NAME_CHARS`].
    pub fn bounded(self) -> Frame {
        let cut = |name: Arc<str>| match name.char_indices().nth(MAX_NAME_CHARS) {
            None => name,
            Some(_) => bounded_name(name.to_string()).into(),
        };
        Frame {
            function: cut(self.function),
            file: cut(self.file),
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

/// A stack, outermost frame first, shared: the stack reader hands the same allocation for a
/// stack it has read before, and [`StackTable::intern`] knows it again by its address.
pub type Stack = Arc<[Frame]>;

/// Index of an interned stack in a [`StackTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StackId(pub u32);

/// The most frames of stacks [`StackTable`] knows by address besides its own: past that it
/// forgets them and learns again, so that a reader that hands a new copy at every tick (py-spy,
/// a thread in two interpreters) keeps little alive.
const MAX_ALIAS_FRAMES: usize = 1 << 16;

/// Distinct stacks, each stored once: memory grows with distinct stacks, not with run length.
/// A stack lists frames outermost first.
#[derive(Debug, Default)]
pub struct StackTable {
    stacks: Vec<Stack>,
    index: HashMap<Stack, StackId>,
    /// Stacks by the address of their frames: the stored ones, and [`StackTable::aliases`].
    /// A stack the reader hands again is found here without hashing its frames.
    by_address: HashMap<usize, StackId>,
    /// Allocations equal to a stored stack but not it, kept alive while their address is in
    /// `by_address` so that no other stack can take that address meanwhile.
    aliases: Vec<Stack>,
    alias_frames: usize,
}

impl StackTable {
    pub fn intern(&mut self, frames: impl Into<Stack>) -> StackId {
        let frames: Stack = frames.into();
        // An empty slice's address says nothing about its contents.
        let address = (!frames.is_empty()).then(|| frames.as_ptr() as usize);
        if let Some(&id) = address.and_then(|a| self.by_address.get(&a)) {
            return id;
        }
        if let Some(&id) = self.index.get(&frames) {
            if let Some(a) = address {
                if self.alias_frames + frames.len() > MAX_ALIAS_FRAMES {
                    for old in self.aliases.drain(..) {
                        self.by_address.remove(&(old.as_ptr() as usize));
                    }
                    self.alias_frames = 0;
                }
                if frames.len() <= MAX_ALIAS_FRAMES {
                    self.alias_frames += frames.len();
                    self.aliases.push(frames);
                    self.by_address.insert(a, id);
                }
            }
            return id;
        }
        let id = StackId(self.stacks.len() as u32);
        self.stacks.push(frames.clone());
        self.index.insert(frames, id);
        if let Some(a) = address {
            self.by_address.insert(a, id);
        }
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
    fn a_stack_is_known_by_its_address_and_by_its_frames() {
        let mut table = StackTable::default();
        let shared: Stack = vec![frame("main"), frame("work")].into();
        let a = table.intern(shared.clone());
        assert_eq!(table.intern(shared.clone()), a);
        // Equal frames in another allocation, twice: the same stack, stored once.
        let copy: Stack = shared.to_vec().into();
        assert_eq!(table.intern(copy.clone()), a);
        assert_eq!(table.intern(copy), a);
        assert_eq!(table.len(), 1);
        // A reader that hands a new copy at every tick keeps a bounded number alive.
        let deep: Vec<Frame> = (0..1000).map(|_| frame("f")).collect();
        let deep_id = table.intern(deep.clone());
        for _ in 0..200 {
            assert_eq!(table.intern(deep.clone()), deep_id);
        }
        assert!(table.alias_frames <= MAX_ALIAS_FRAMES);
        assert_eq!(
            table.alias_frames,
            table.aliases.iter().map(|a| a.len()).sum::<usize>()
        );
        // An empty stack has no address of its own.
        let empty = table.intern(Vec::new());
        assert_ne!(empty, a);
        assert_eq!(table.intern(Vec::new()), empty);
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
        assert_eq!(&*table.get(a)[1].function, "work");
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
        assert_eq!(&*frame.file, "app.py");
    }
}

//! What each code object says — its function and file names and its decoded line table —
//! read once and kept by address.
//!
//! A freed code object's address can be taken by new code. Two checks keep a cached entry
//! from being misread for it:
//!
//! - 3.14+ counts freed code objects per interpreter (`_code_object_generation`): while no
//!   interpreter's count has moved since an entry was checked, the entry is good and costs
//!   no read at all;
//! - otherwise (older versions, or after the count moved) the code object's head is read
//!   again, all code objects of a tick in one batch: a new object's names and line table
//!   are new objects, so a head whose name, file or line-table pointers differ is another
//!   entry ([`CodeKey`]).
//!
//! At most [`MAX_CACHED_CODE`] entries are kept: memory is bounded by distinct code objects,
//! not by samples, and a target that makes code without end cannot grow it past the bound.

use std::sync::Arc;

use foldhash::HashMap;

use anyhow::{Context, Result};

use super::lines::{self, line_at, LineRun};
use super::strings::{read_bytes, read_str};
use super::{at, int, word, FrameLayout, UNREADABLE_NAME};
use crate::cpython::{Batch, Memory};
use crate::model::Frame;

const MAX_LINETABLE: usize = 1 << 20;
pub(super) const MAX_CACHED_CODE: usize = 4096;

/// `Py_TPFLAGS_HEAPTYPE`: `PyCode_Type` is a static type, a class named `code` is not.
const HEAP_TYPE: u64 = 1 << 9;

/// What identifies a code object's contents: its address and the objects it points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct CodeKey {
    addr: u64,
    filename: u64,
    name: u64,
    /// 0 before 3.11.
    qualname: u64,
    linetable: u64,
    firstlineno: i32,
}

pub(super) struct CodeInfo {
    pub function: Arc<str>,
    pub file: Arc<str>,
    lines: Vec<LineRun>,
    firstlineno: i32,
}

impl CodeInfo {
    /// The frame running instruction `index` (as [`lines::line_at`] counts) of this code.
    pub fn frame(&self, index: i64) -> Frame {
        Frame {
            function: self.function.clone(),
            file: self.file.clone(),
            line: line_at(&self.lines, index, self.firstlineno),
        }
    }
}

struct Entry {
    key: CodeKey,
    info: CodeInfo,
    /// The code generation it was last checked at ([`Codes::generation`]).
    checked: Option<u64>,
}

/// The cache, and the reads that check it.
#[derive(Default)]
pub(super) struct Codes {
    entries: HashMap<u64, Entry>,
    /// `PyCode_Type`'s address, once a frame has shown it.
    code_type: Option<u64>,
    /// The sum of every interpreter's code generation at this tick (3.14+), `None` where
    /// the version has none or it could not be read.
    pub generation: Option<u64>,
    /// Whether the last [`Codes::check`] dropped or replaced an entry: what was read for an
    /// address before no longer holds.
    pub changed: bool,
    batch: Batch,
    /// The code objects of this tick whose head is read, and which read holds it.
    heads: Vec<(u64, usize)>,
    /// Those that could not be read this tick, with why.
    failed: HashMap<u64, String>,
    /// Those that are not code objects (`None`: the frame is left out), and those read but
    /// with a name that could not be read: not cached, since it may be readable at the next
    /// tick.
    odd: HashMap<u64, Option<CodeInfo>>,
}

impl Codes {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Makes sure every code object of `codes` (each once) is known for this tick: the ones
    /// the cache cannot vouch for have their heads read in one batch, and new ones their
    /// names and line tables.
    pub fn check(&mut self, mem: &dyn Memory, l: &FrameLayout, codes: &[u64]) {
        self.failed.clear();
        self.odd.clear();
        self.changed = false;
        // Full: start again, before the tick rather than inside it, so that every code
        // object this tick checks stays until its frames are built.
        if self.entries.len() + codes.len() > MAX_CACHED_CODE {
            self.entries.clear();
            self.changed = true;
        }
        self.batch.clear();
        self.heads.clear();
        for &code in codes {
            let trusted = self.generation.is_some()
                && self
                    .entries
                    .get(&code)
                    .is_some_and(|e| e.checked == self.generation);
            if !trusted {
                let id = self.batch.push(code, l.code_len());
                self.heads.push((code, id));
            }
        }
        if self.batch.is_empty() {
            return;
        }
        self.batch.run(mem);
        let heads = std::mem::take(&mut self.heads);
        for &(code, id) in &heads {
            if let Err(e) = self.check_head(mem, l, code, id) {
                self.failed.insert(code, format!("{e:#}"));
            }
        }
        self.heads = heads;
    }

    /// Whether every code object of this tick is a cached entry: none failed, none odd.
    pub fn all_cached(&self) -> bool {
        self.failed.is_empty() && self.odd.is_empty()
    }

    /// The code object at `code` as [`Codes::check`] left it this tick; `None` when it is
    /// not a code object.
    pub fn get(&self, code: u64) -> Result<Option<&CodeInfo>> {
        // A code object that failed or is odd this tick has no entry, or one that stands
        // for what was at its address before.
        if !self.failed.is_empty() {
            if let Some(e) = self.failed.get(&code) {
                anyhow::bail!("{e}");
            }
        }
        if !self.odd.is_empty() {
            if let Some(odd) = self.odd.get(&code) {
                return Ok(odd.as_ref());
            }
        }
        match self.entries.get(&code) {
            Some(e) => Ok(Some(&e.info)),
            None => anyhow::bail!("the code object at {code:#x} was not checked"),
        }
    }

    /// One head read in the batch: the entry it confirms, replaces or adds.
    fn check_head(
        &mut self,
        mem: &dyn Memory,
        l: &FrameLayout,
        code: u64,
        id: usize,
    ) -> Result<()> {
        let head = self
            .batch
            .get(id)
            .with_context(|| format!("reading the code object at {code:#x}"))?;
        let key = CodeKey {
            addr: code,
            filename: word(head, l.co_filename),
            name: word(head, l.co_name),
            qualname: l.co_qualname.map_or(0, |q| word(head, q)),
            linetable: word(head, l.co_linetable),
            firstlineno: int(head, l.co_firstlineno),
        };
        let ty = word(head, l.ob_type);
        if !self.is_code_type(mem, l, ty)? {
            self.odd.insert(code, None);
            return Ok(());
        }
        if let Some(e) = self.entries.get_mut(&code) {
            if e.key == key {
                e.checked = self.generation;
                return Ok(());
            }
            self.changed = true;
        }
        let (info, complete) = read_code(mem, l, &key)
            .with_context(|| format!("reading the code object at {code:#x}"))?;
        if !complete {
            self.odd.insert(code, Some(info));
            return Ok(());
        }
        self.entries.insert(
            code,
            Entry {
                key,
                info,
                checked: self.generation,
            },
        );
        Ok(())
    }

    /// Whether `ty` is `PyCode_Type`: a static type named `code`. The first one found is
    /// remembered, after which the check costs no read.
    fn is_code_type(&mut self, mem: &dyn Memory, l: &FrameLayout, ty: u64) -> Result<bool> {
        if let Some(code_type) = self.code_type {
            return Ok(ty == code_type);
        }
        if ty == 0 {
            return Ok(false);
        }
        let name = mem.read_u64(at(ty, l.tp_name)).context("reading tp_name")?;
        let flags = mem
            .read_u64(at(ty, l.tp_flags))
            .context("reading tp_flags")?;
        let mut text = [0u8; 5];
        mem.read(name, &mut text)
            .with_context(|| format!("reading the type name at {name:#x}"))?;
        let is_code = &text == b"code\0" && flags & HEAP_TYPE == 0;
        if is_code {
            self.code_type = Some(ty);
        }
        Ok(is_code)
    }
}

/// Names and line table of a code object, which [`Codes::check_head`] has checked is one,
/// and whether both names were read (a placeholder is not worth remembering). The function
/// is its qualified name where there is one, else `co_name`.
fn read_code(mem: &dyn Memory, l: &FrameLayout, key: &CodeKey) -> Result<(CodeInfo, bool)> {
    let qualname = match l.co_qualname {
        Some(_) => read_str(mem, l, key.qualname).ok(),
        None => None,
    };
    let function = qualname.or_else(|| read_str(mem, l, key.name).ok());
    let file = read_str(mem, l, key.filename).ok();
    let complete = function.is_some() && file.is_some();
    let table = read_bytes(mem, l, key.linetable, MAX_LINETABLE).context("reading co_linetable")?;
    let info = CodeInfo {
        function: function.map_or_else(|| UNREADABLE_NAME.into(), Into::into),
        file: file.map_or_else(|| UNREADABLE_NAME.into(), Into::into),
        lines: lines::decode(l.lines, &table, key.firstlineno),
        firstlineno: key.firstlineno,
    };
    Ok((info, complete))
}

//! The tables of a pprof profile being built: strings, functions and locations, each stored
//! once and numbered in order of first use, so that the same input gives the same bytes.

use std::collections::HashMap;

use super::proto;

/// A profile being built: the caller adds samples and header fields to `profile`, and
/// names strings, functions and locations through the builder, which stores each once.
pub struct Builder {
    pub profile: proto::Profile,
    string_ids: HashMap<String, i64>,
    /// (name, file) string indices -> function id.
    function_ids: HashMap<(i64, i64), u64>,
    /// (function id, line) -> location id.
    location_ids: HashMap<(u64, i64), u64>,
}

impl Builder {
    /// An empty profile whose string table starts with "", as pprof requires.
    pub fn new() -> Builder {
        let mut b = Builder {
            profile: proto::Profile::default(),
            string_ids: HashMap::new(),
            function_ids: HashMap::new(),
            location_ids: HashMap::new(),
        };
        b.string("");
        b
    }

    /// The index of `s` in the string table.
    pub fn string(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.profile.string_table.len() as i64;
        self.profile.string_table.push(s.to_string());
        self.string_ids.insert(s.to_string(), id);
        id
    }

    /// The id of the function `name` in `file`; its system name is its name.
    pub fn function(&mut self, name: &str, file: &str) -> u64 {
        let key = (self.string(name), self.string(file));
        if let Some(&id) = self.function_ids.get(&key) {
            return id;
        }
        let id = self.profile.function.len() as u64 + 1;
        self.profile.function.push(proto::Function {
            id,
            name: key.0,
            system_name: key.0,
            filename: key.1,
            start_line: 0,
        });
        self.function_ids.insert(key, id);
        id
    }

    /// The id of the location `line` of `function`, a function id.
    pub fn location(&mut self, function: u64, line: i64) -> u64 {
        let key = (function, line);
        if let Some(&id) = self.location_ids.get(&key) {
            return id;
        }
        let id = self.profile.location.len() as u64 + 1;
        self.profile.location.push(proto::Location {
            id,
            line: vec![proto::Line {
                function_id: function,
                line,
                column: 0,
            }],
            ..Default::default()
        });
        self.location_ids.insert(key, id);
        id
    }

    pub fn value_type(&mut self, kind: &str, unit: &str) -> proto::ValueType {
        proto::ValueType {
            r#type: self.string(kind),
            unit: self.string(unit),
        }
    }

    pub fn str_label(&mut self, key: &str, value: &str) -> proto::Label {
        proto::Label {
            key: self.string(key),
            str: self.string(value),
            ..Default::default()
        }
    }

    pub fn num_label(&mut self, key: &str, value: i64) -> proto::Label {
        proto::Label {
            key: self.string(key),
            num: value,
            ..Default::default()
        }
    }

    pub fn finish(self) -> proto::Profile {
        self.profile
    }
}

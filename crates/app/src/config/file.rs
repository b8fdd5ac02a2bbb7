//! Reading a configuration file so that every wrong key is reported with its line, not just the first.
//!
//! Each key of the file is deserialized on its own, put into the default configuration in its place, so
//! an unknown key, a wrong type and an unparsable value are each caught and the rest of the file still
//! counts. A key whose default is a table is checked key by key inside it; an array element by element.
//! Nothing here knows the configuration's keys: any `Serialize + Deserialize + Default` type works, so
//! new keys need no code here.
//!
//! A string given to an integer key whose name ends in `_ms`, `_secs`, `_hours` or `_days` is read as a
//! duration (`"500ms"`, `"30s"`, `"5m"`, `"8h"`, `"7d"`, [`sekisho_core::span::parse_millis`]) and
//! converted to that unit; a bare number keeps meaning that unit.

use sekisho_core::span::{FORMS, parse_millis};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use toml::de::{DeTable, DeValue};
use toml::{Table, Value};

/// One problem, with the line of the file it is about when it is about one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// 1-based line; `None` for a key the file does not set.
    pub line: Option<usize>,
    pub text: String,
}

/// Where each dotted key of the file is (`device.listen`, `carrier.radius.clients[0].address`).
#[derive(Clone, Debug, Default)]
pub struct KeyLines(BTreeMap<String, usize>);

impl KeyLines {
    pub fn line(&self, key: &str) -> Option<usize> {
        self.0.get(key).copied()
    }

    /// Forgets a key whose value was overridden (a flag or the environment): its problems are not the
    /// file's.
    pub fn forget(&mut self, key: &str) {
        self.0.remove(key);
    }

    /// Locates a problem that starts with its dotted key (`device.listen: …`, `store.sync must …`).
    pub fn locate(&self, text: String) -> Problem {
        let key: String = text
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'))
            .collect();
        Problem {
            line: self.line(&key),
            text,
        }
    }

    fn walk(&mut self, text: &str, prefix: &str, table: &DeTable<'_>) {
        for (k, v) in table.iter() {
            let path = join(prefix, k.get_ref());
            self.0.insert(path.clone(), line_at(text, k.span().start));
            match v.get_ref() {
                DeValue::Table(t) => self.walk(text, &path, t),
                DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let p = format!("{path}[{i}]");
                        self.0.insert(p.clone(), line_at(text, item.span().start));
                        if let DeValue::Table(t) = item.get_ref() {
                            self.walk(text, &p, t);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// What [`parse`] found: the value built from every good key (defaults elsewhere), where the keys are,
/// and the problems of the others.
pub struct Parsed<T> {
    pub value: T,
    pub lines: KeyLines,
    pub problems: Vec<Problem>,
}

/// Parses `text` as a `T`, checking every key on its own.
pub fn parse<T: Serialize + DeserializeOwned + Default>(text: &str) -> Parsed<T> {
    let mut lines = KeyLines::default();
    let (de, syntax) = DeTable::parse_recoverable(text);
    let values = match text.parse::<Table>() {
        Ok(v) if syntax.is_empty() => v,
        other => {
            // A syntax error leaves no trustworthy keys: report every one the parser found.
            let errors = if syntax.is_empty() {
                other.err().into_iter().collect()
            } else {
                syntax
            };
            let problems = errors
                .iter()
                .map(|e| Problem {
                    line: e.span().map(|s| line_at(text, s.start)),
                    text: e.message().to_owned(),
                })
                .collect();
            return Parsed {
                value: T::default(),
                lines,
                problems,
            };
        }
    };
    lines.walk(text, "", de.get_ref());
    let defaults = match Value::try_from(T::default()) {
        Ok(Value::Table(t)) => t,
        _ => Table::new(),
    };
    let mut check = Check::<T> {
        defaults,
        lines: &lines,
        problems: Vec::new(),
        _t: std::marker::PhantomData,
    };
    let good = check.table(&[], &values);
    let mut problems = check.problems;
    let value = match Value::Table(good).try_into::<T>() {
        Ok(v) => v,
        Err(e) => {
            // Keys that are good alone but not together: say so rather than run on defaults silently.
            problems.push(Problem {
                line: None,
                text: e.message().to_owned(),
            });
            T::default()
        }
    };
    problems.sort();
    Parsed {
        value,
        lines,
        problems,
    }
}

struct Check<'a, T> {
    /// The default configuration as TOML: each key is tried in its place.
    defaults: Table,
    lines: &'a KeyLines,
    problems: Vec<Problem>,
    _t: std::marker::PhantomData<T>,
}

impl<T: DeserializeOwned> Check<'_, T> {
    /// The good part of `table` (at `path`); every bad key becomes a problem.
    fn table(&mut self, path: &[&str], table: &Table) -> Table {
        let mut good = Table::new();
        for (key, value) in table {
            let p: Vec<&str> = path.iter().copied().chain([key.as_str()]).collect();
            let dotted = p.join(".");
            let err = match self.accepts(&p, value.clone()) {
                Ok(()) => {
                    good.insert(key.clone(), value.clone());
                    continue;
                }
                Err(e) => e,
            };
            match (value, self.default_at(&p)) {
                (Value::Table(sub), Some(Value::Table(_))) => {
                    let sub = self.table(&p, sub);
                    good.insert(key.clone(), Value::Table(sub));
                }
                (Value::Array(items), Some(Value::Array(_))) if !items.is_empty() => {
                    let mut kept = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        match self.accepts(&p, Value::Array(vec![item.clone()])) {
                            Ok(()) => kept.push(item.clone()),
                            Err(e) => self.problem(&format!("{dotted}[{i}]"), e),
                        }
                    }
                    good.insert(key.clone(), Value::Array(kept));
                }
                (Value::String(s), Some(Value::Integer(_))) => match duration(key, s) {
                    Some(Ok(n)) => match self.accepts(&p, Value::Integer(n)) {
                        Ok(()) => {
                            good.insert(key.clone(), Value::Integer(n));
                        }
                        Err(e) => self.problem(&dotted, e),
                    },
                    Some(Err(e)) => self.problem(&dotted, e),
                    None => self.problem(&dotted, err),
                },
                _ => self.problem(&dotted, err),
            }
        }
        good
    }

    /// Whether the default configuration with `value` at `path` deserializes; its error if not.
    fn accepts(&self, path: &[&str], value: Value) -> Result<(), String> {
        let mut doc = self.defaults.clone();
        let mut t = &mut doc;
        for (i, k) in path.iter().enumerate() {
            if i + 1 == path.len() {
                t.insert((*k).to_owned(), value);
                break;
            }
            let slot = t
                .entry((*k).to_owned())
                .or_insert_with(|| Value::Table(Table::new()));
            if !slot.is_table() {
                *slot = Value::Table(Table::new());
            }
            t = match slot {
                Value::Table(t) => t,
                _ => return Err("not a table".into()),
            };
        }
        Value::Table(doc)
            .try_into::<T>()
            .map(|_| ())
            .map_err(|e| e.message().to_owned())
    }

    fn default_at(&self, path: &[&str]) -> Option<&Value> {
        let (last, parents) = path.split_last()?;
        let mut t = &self.defaults;
        for k in parents {
            t = t.get(*k)?.as_table()?;
        }
        t.get(*last)
    }

    fn problem(&mut self, key: &str, message: String) {
        self.problems.push(Problem {
            line: self.lines.line(key),
            text: format!("{key}: {message}"),
        });
    }
}

/// A duration string given to a key named for its unit, in that unit: `None` when the key names no
/// unit, an error when the string is not a duration or not a whole number of that unit.
fn duration(key: &str, s: &str) -> Option<Result<i64, String>> {
    let (unit_ms, unit) = [
        ("_ms", 1, "milliseconds"),
        ("_secs", 1000, "seconds"),
        ("_hours", 3_600_000, "hours"),
        ("_days", 86_400_000, "days"),
    ]
    .into_iter()
    .find(|(suffix, _, _)| key.ends_with(suffix))
    .map(|(_, ms, unit)| (ms, unit))?;
    let Some(ms) = parse_millis(s, unit_ms) else {
        return Some(Err(format!("'{s}' is not a duration ({FORMS})")));
    };
    if !ms.is_multiple_of(unit_ms) {
        return Some(Err(format!("'{s}' is not a whole number of {unit}")));
    }
    Some(i64::try_from(ms / unit_ms).map_err(|_| format!("'{s}' is too long")))
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Doc {
        a: Section,
        b: Section,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Section {
        n: u32,
        name: String,
        wait_secs: u64,
        delay_ms: u64,
        list: Vec<Item>,
        inner: Inner,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        x: u8,
    }

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Inner {
        flag: bool,
    }

    impl Default for Section {
        fn default() -> Self {
            Self {
                n: 1,
                name: "x".into(),
                wait_secs: 10,
                delay_ms: 500,
                list: Vec::new(),
                inner: Inner::default(),
            }
        }
    }

    /// The problems of `text`, as (line, start of text).
    fn check(text: &str, expected: &[(Option<usize>, &str)]) -> Doc {
        let p = parse::<Doc>(text);
        let got: Vec<(Option<usize>, &str)> = p
            .problems
            .iter()
            .map(|p| (p.line, p.text.as_str()))
            .collect();
        assert_eq!(got.len(), expected.len(), "{got:#?}");
        for ((line, text), (want_line, want)) in got.iter().zip(expected) {
            assert_eq!(line, want_line, "{text}");
            assert!(
                text.starts_with(want),
                "{text:?} does not start with {want:?}"
            );
        }
        p.value
    }

    #[test]
    fn every_wrong_key_is_reported_with_its_line_and_the_rest_counts() {
        let v = check(
            "[a]\nn = \"three\"\nname = \"ok\"\nnn = 1\n[b]\nn = 4\ninner = { flag = 1, flg = true }\n[c]\n",
            &[
                (Some(2), "a.n: invalid type: string \"three\", expected u32"),
                (Some(4), "a.nn: unknown field `nn`, expected one of"),
                (Some(7), "b.inner.flag: invalid type: integer"),
                (Some(7), "b.inner.flg: unknown field `flg`"),
                (Some(8), "c: unknown field `c`, expected `a` or `b`"),
            ],
        );
        assert_eq!(v.a.name, "ok");
        assert_eq!(v.a.n, 1, "a bad key keeps its default");
        assert_eq!(v.b.n, 4);
    }

    #[test]
    fn array_elements_are_checked_one_by_one() {
        let v = check(
            "[a]\nlist = [\n  { x = 1 },\n  { x = 300 },\n  { y = 2 },\n]\n",
            &[
                (Some(4), "a.list[1]: invalid value: integer `300`"),
                (Some(5), "a.list[2]: unknown field `y`"),
            ],
        );
        assert_eq!(v.a.list, vec![Item { x: 1 }]);
    }

    #[test]
    fn durations_take_the_template_form_and_plain_numbers_keep_their_unit() {
        let v = check(
            "[a]\nwait_secs = \"8h\"\ndelay_ms = \"2s\"\n[b]\nwait_secs = 30\ndelay_ms = 250\n",
            &[],
        );
        assert_eq!((v.a.wait_secs, v.a.delay_ms), (28_800, 2000));
        assert_eq!((v.b.wait_secs, v.b.delay_ms), (30, 250));
        check(
            "[a]\nwait_secs = \"soon\"\ndelay_ms = \"1d\"\n[b]\nwait_secs = \"1500ms\"\nname = \"8h\"\n",
            &[
                (Some(2), "a.wait_secs: 'soon' is not a duration (500ms, 30s"),
                (
                    Some(5),
                    "b.wait_secs: '1500ms' is not a whole number of seconds",
                ),
            ],
        );
    }

    #[test]
    fn a_syntax_error_is_reported_with_its_line() {
        check("[a]\nn = 1\nname = \n", &[(Some(3), "")]);
        let p = parse::<Doc>("[a]\nn = 1\n[a]\n");
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        assert_eq!(p.problems[0].line, Some(3));
    }

    #[test]
    fn semantic_problems_are_located_by_their_leading_key() {
        let p = parse::<Doc>("[a]\n\nn = 0\nlist = [{ x = 1 }]\n");
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(
            p.lines.locate("a.n must be greater than 0".into()).line,
            Some(3)
        );
        assert_eq!(p.lines.locate("a.list[0].x: odd".into()).line, Some(4));
        assert_eq!(p.lines.locate("b.n: not in the file".into()).line, None);
        let mut lines = p.lines;
        lines.forget("a.n");
        assert_eq!(lines.locate("a.n: overridden".into()).line, None);
    }
}

//! The configuration file, as serde reads it: one struct per table, each
//! value parsed as it is read by the parser of its flag (so that its error
//! has the value's place), and errors named `FILE:LINE: key: reason`.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::LazyLock;

use netev_event::Op;
use netev_rules::Action;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use toml_edit::{ImDocument, Item, TableLike};

use netev_export::ExportTarget;

use crate::settings::{parse_size, Backend, BusSpec, MaxAge, MetricsAddr, PinDir, StoreSpec};

/// A problem in the file, at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based; 0 when the file could not be read at all.
    pub line: usize,
    /// The dotted key (`store.max_rows`), empty for a syntax error.
    pub key: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.key.is_empty()) {
            (0, _) => write!(f, "{}: {}", self.file.display(), self.reason),
            (l, true) => write!(f, "{}:{l}: {}", self.file.display(), self.reason),
            (l, false) => write!(
                f,
                "{}:{l}: {}: {}",
                self.file.display(),
                self.key,
                self.reason
            ),
        }
    }
}

impl std::error::Error for Problem {}

/// What the file sets; `None` where it says nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileSettings {
    /// The file, table by table.
    pub file: File,
    /// `policy.default` first (all ops), then per-op keys, in file order
    /// (the `[policy]` table's, here for the rule engine).
    pub policy: Vec<(PolicyKey, Action)>,
    /// `policy.ask_fallback` (likewise).
    pub ask_fallback: Option<Action>,
}

impl From<File> for FileSettings {
    fn from(file: File) -> FileSettings {
        FileSettings {
            policy: file.policy.actions.clone(),
            ask_fallback: file.policy.ask_fallback,
            file,
        }
    }
}

impl FileSettings {
    /// The values the file gives to flags: (the flag's id, which is the
    /// key's dotted name; the value as the flag takes it). Serializing
    /// [`File`] walks every key it has, so no key is listed here.
    pub(super) fn flag_defaults(&self) -> Vec<(String, String)> {
        fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        let dotted = match prefix {
                            "" => k.clone(),
                            p => format!("{p}.{k}"),
                        };
                        walk(&dotted, v, out)
                    }
                }
                serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
                // null: a key the file does not set
                _ => {}
            }
        }
        let tree = serde_json::to_value(&self.file).expect("strings and tables only");
        let mut out = Vec::new();
        walk("", &tree, &mut out);
        out
    }
}

/// What a `[policy]` action applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKey {
    All,
    Op(Op),
}

/// A value the file sets: what it means, and how its flag is given it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileValue<T> {
    pub value: T,
    /// The value as the flag's parser takes it (and gets it, as the flag's
    /// default).
    pub flag: String,
}

impl<T> Serialize for FileValue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.flag)
    }
}

/// The file, as its tables are laid out. Each value is parsed by one of
/// the functions below as it is read, so its error carries the value's
/// place: toml gives an error without a place the place of the value (or
/// key) being read when it was raised.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct File {
    #[serde(deserialize_with = "path")]
    pub cgroup: Option<FileValue<PathBuf>>,
    #[serde(deserialize_with = "flag")]
    pub bus: Option<FileValue<BusSpec>>,
    #[serde(deserialize_with = "text")]
    pub access_group: Option<FileValue<String>>,
    #[serde(deserialize_with = "path")]
    pub state_dir: Option<FileValue<PathBuf>>,
    #[serde(deserialize_with = "path")]
    pub run_dir: Option<FileValue<PathBuf>>,
    #[serde(deserialize_with = "log_filter")]
    pub log_level: Option<FileValue<String>>,
    #[serde(deserialize_with = "flag")]
    pub pin_dir: Option<FileValue<PinDir>>,
    pub capture: Capture,
    pub store: Store,
    pub policy: PolicyTable,
    pub rules: Rules,
    pub metrics: Metrics,
    /// `[[export]]`, in file order. Not a flag default: `--export` given on
    /// the command line replaces the whole list (`Args::with_file`).
    #[serde(skip_serializing)]
    pub export: Vec<ExportEntry>,
}

/// One `[[export]]`: `url`, and any of the target's options as keys of
/// their own (docs/export.md).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportEntry(pub ExportTarget);

/// The keys an `[[export]]` may have.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct ExportKeys {
    url: Option<Scalar>,
    format: Option<Scalar>,
    spool_max: Option<Scalar>,
    creds: Option<Scalar>,
    ca: Option<Scalar>,
    subject: Option<Scalar>,
    stream: Option<Scalar>,
    rotate: Option<Scalar>,
    keep: Option<Scalar>,
}

impl<'de> Deserialize<'de> for ExportEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let k = ExportKeys::deserialize(d)?;
        let url = string(k.url.ok_or_else(|| de::Error::missing_field("url"))?)
            .map_err(de::Error::custom)?;
        let mut target: ExportTarget = url.parse().map_err(de::Error::custom)?;
        for (name, value) in [
            ("format", k.format),
            ("spool_max", k.spool_max),
            ("creds", k.creds),
            ("ca", k.ca),
            ("subject", k.subject),
            ("stream", k.stream),
            ("rotate", k.rotate),
            ("keep", k.keep),
        ] {
            let text = match value {
                None => continue,
                Some(Scalar::Str(s)) => s,
                Some(Scalar::Int(n)) if n >= 0 => n.to_string(),
                Some(other) => {
                    return Err(de::Error::custom(format!(
                        "{name}: expected a string or a whole number, found {}",
                        other.kind()
                    )))
                }
            };
            target.set_option(name, &text).map_err(de::Error::custom)?;
        }
        Ok(ExportEntry(target))
    }
}

/// `[metrics]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
pub struct Metrics {
    #[serde(deserialize_with = "flag")]
    pub listen: Option<FileValue<MetricsAddr>>,
}

/// `[capture]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
pub struct Capture {
    #[serde(deserialize_with = "flag")]
    pub backend: Option<FileValue<Backend>>,
    /// `--no-coalesce` says the opposite: its flag text is the negation.
    #[serde(deserialize_with = "coalesce")]
    pub coalesce: Option<FileValue<bool>>,
    #[serde(deserialize_with = "ringbuf_size")]
    pub ringbuf_size: Option<FileValue<u32>>,
}

/// `[store]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
pub struct Store {
    #[serde(deserialize_with = "flag")]
    pub url: Option<FileValue<StoreSpec>>,
    #[serde(deserialize_with = "max_age")]
    pub max_age: Option<FileValue<MaxAge>>,
    #[serde(deserialize_with = "whole")]
    pub max_rows: Option<FileValue<u64>>,
    #[serde(deserialize_with = "text")]
    pub host_name: Option<FileValue<String>>,
}

/// `[rules]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, expecting = "a table")]
pub struct Rules {
    #[serde(deserialize_with = "path")]
    pub file: Option<FileValue<PathBuf>>,
}

/// `[policy]`: an action per op (whichever ops netev-event has), the ask
/// fallback, and the prompt timeout (the one with a flag).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PolicyTable {
    /// `default` first (all ops), then per-op keys, in file order.
    #[serde(skip)]
    pub actions: Vec<(PolicyKey, Action)>,
    #[serde(skip)]
    pub ask_fallback: Option<Action>,
    pub prompt_timeout: Option<FileValue<u64>>,
}

/// The keys of `[policy]`, in the order the docs give them.
static POLICY_KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut keys = vec!["default"];
    keys.extend(Op::ALL.map(Op::name));
    keys.extend(["ask_fallback", "prompt_timeout"]);
    keys
});

/// A key of `[policy]`. An unknown one is refused while the key is read,
/// so that the error has the key's place.
enum PolicyField {
    Default,
    Op(Op),
    AskFallback,
    PromptTimeout,
}

impl<'de> Deserialize<'de> for PolicyField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(match name.as_str() {
            "default" => PolicyField::Default,
            "ask_fallback" => PolicyField::AskFallback,
            "prompt_timeout" => PolicyField::PromptTimeout,
            op => PolicyField::Op(
                op.parse()
                    .map_err(|_| de::Error::unknown_field(op, POLICY_KEYS.as_slice()))?,
            ),
        })
    }
}

impl<'de> Deserialize<'de> for PolicyTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Table;
        impl<'de> Visitor<'de> for Table {
            type Value = PolicyTable;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PolicyTable, A::Error> {
                let mut t = PolicyTable::default();
                while let Some(field) = map.next_key()? {
                    match field {
                        PolicyField::Default => {
                            let a = map.next_value_seed(Parse(action))?;
                            t.actions.insert(0, (PolicyKey::All, a));
                        }
                        PolicyField::Op(op) => {
                            let a = map.next_value_seed(Parse(action))?;
                            t.actions.push((PolicyKey::Op(op), a));
                        }
                        PolicyField::AskFallback => {
                            t.ask_fallback = Some(map.next_value_seed(Parse(ask_fallback))?)
                        }
                        PolicyField::PromptTimeout => {
                            t.prompt_timeout = Some(map.next_value_seed(Parse(prompt_timeout))?)
                        }
                    }
                }
                Ok(t)
            }
        }
        d.deserialize_struct("PolicyTable", POLICY_KEYS.as_slice(), Table)
    }
}

/// A value of the file before it means anything: TOML's kinds, as far as
/// settings are concerned.
enum Scalar {
    Str(String),
    Int(i64),
    Bool(bool),
    /// Another kind, by its name: no setting takes one.
    Other(&'static str),
}

impl Scalar {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "string",
            Scalar::Int(_) => "integer",
            Scalar::Bool(_) => "boolean",
            Scalar::Other(kind) => kind,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Scalar, E> {
                Ok(Scalar::Other("float"))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Scalar, A::Error> {
                Ok(Scalar::Other("array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                // toml hands a date or time over as a map with one private key
                let first = map.next_key::<String>()?;
                Ok(Scalar::Other(match first {
                    Some(k) if k.starts_with("$__toml_private") => "datetime",
                    // a `[table]` where a value belongs is refused before
                    // its value is read (see `misplaced`): this is `{...}`
                    _ => "inline table",
                }))
            }
        }
        d.deserialize_any(Any)
    }
}

/// Reads a [`Scalar`] and turns it into a value with `F`, inside the
/// deserializer: `F`'s error then has the value's place.
struct Parse<F>(F);

impl<'de, T, F: FnOnce(Scalar) -> Result<T, String>> DeserializeSeed<'de> for Parse<F> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        (self.0)(Scalar::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// A key's value with its flag text, read with `f` (for `deserialize_with`).
fn read<'de, D, T>(
    d: D,
    f: impl FnOnce(Scalar) -> Result<(T, String), String>,
) -> Result<Option<FileValue<T>>, D::Error>
where
    D: Deserializer<'de>,
{
    let (value, flag) = Parse(f).deserialize(d)?;
    Ok(Some(FileValue { value, flag }))
}

fn string(v: Scalar) -> Result<String, String> {
    match v {
        Scalar::Str(s) => Ok(s),
        other => Err(format!(
            "expected a string in quotes, found {}",
            other.kind()
        )),
    }
}

fn integer(v: Scalar) -> Result<u64, String> {
    match v {
        Scalar::Int(n) => u64::try_from(n).map_err(|_| format!("{n} is negative")),
        other => Err(format!("expected a whole number, found {}", other.kind())),
    }
}

fn action(v: Scalar) -> Result<Action, String> {
    string(v)?.parse::<Action>().map_err(|e| e.to_string())
}

fn ask_fallback(v: Scalar) -> Result<Action, String> {
    match action(v)? {
        Action::Ask => Err("the ask fallback is what happens while asking: allow or deny".into()),
        a => Ok(a),
    }
}

fn prompt_timeout(v: Scalar) -> Result<FileValue<u64>, String> {
    match integer(v)? {
        0 => Err("0 seconds would expire every prompt at once".into()),
        n => Ok(FileValue {
            value: n,
            flag: n.to_string(),
        }),
    }
}

/// A string in quotes.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FileValue<String>>, D::Error> {
    read(d, |v| string(v).map(|s| (s.clone(), s)))
}

/// A string parsed as its flag parses it.
fn flag<'de, D, T>(d: D) -> Result<Option<FileValue<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = String>,
{
    read(d, |v| {
        let s = string(v)?;
        Ok((s.parse()?, s))
    })
}

/// An absolute path (a relative one would depend on where netevd starts).
fn path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FileValue<PathBuf>>, D::Error> {
    read(d, |v| {
        let s = string(v)?;
        if !s.starts_with('/') {
            return Err(format!("{s:?} is not an absolute path"));
        }
        Ok((s.clone().into(), s))
    })
}

/// A log level or filter, checked now rather than on a reload.
fn log_filter<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FileValue<String>>, D::Error> {
    read(d, |v| {
        let s = string(v)?;
        tracing_subscriber::EnvFilter::try_new(&s)
            .map_err(|e| format!("{s:?} is not a log level or filter: {e}"))?;
        Ok((s.clone(), s))
    })
}

fn whole<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FileValue<u64>>, D::Error> {
    read(d, |v| integer(v).map(|n| (n, n.to_string())))
}

fn coalesce<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FileValue<bool>>, D::Error> {
    read(d, |v| match v {
        Scalar::Bool(b) => Ok((b, (!b).to_string())),
        other => Err(format!("expected true or false, found {}", other.kind())),
    })
}

/// A number of bytes, or a string with K or M.
fn ringbuf_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FileValue<u32>>, D::Error> {
    read(d, |v| {
        let s = match v {
            Scalar::Int(n) => n.to_string(),
            other => string(other)?,
        };
        Ok((parse_size(&s)?, s))
    })
}

/// An age as a string, or the number 0 (keep everything).
fn max_age<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FileValue<MaxAge>>, D::Error> {
    read(d, |v| {
        let s = match v {
            Scalar::Int(0) => "0".to_string(),
            other => string(other)?,
        };
        Ok((s.parse()?, s))
    })
}

/// The keys a table's struct reads.
type TableKeys = fn() -> &'static [&'static str];

/// The tables, each with the keys its struct reads.
pub(super) const TABLES: [(&str, TableKeys); 6] = [
    ("capture", keys_of::<Capture>),
    ("store", keys_of::<Store>),
    ("policy", keys_of::<PolicyTable>),
    ("rules", keys_of::<Rules>),
    ("metrics", keys_of::<Metrics>),
    ("export", keys_of::<ExportKeys>),
];

/// Every key the file may hold, for docs and tests: (table, key), the
/// top-level keys with table "".
pub fn keys() -> Vec<(&'static str, &'static str)> {
    let top = keys_of::<File>()
        .iter()
        .filter(|k| !TABLES.iter().any(|(t, _)| t == *k))
        .map(|k| ("", *k));
    let tables = TABLES
        .iter()
        .flat_map(|(t, keys)| keys().iter().map(move |k| (*t, *k)));
    top.chain(tables).collect()
}

/// The field names of a struct that serde reads, as its `Deserialize`
/// gives them to `deserialize_struct` (asked of a deserializer that wants
/// nothing else).
pub(super) fn keys_of<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Fields(&'static [&'static str]);
    impl<'de> Deserializer<'de> for &mut Fields {
        type Error = de::value::Error;
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = fields;
            Err(de::Error::custom("only the field names were asked for"))
        }
        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields = Fields(&[]);
    let _ = T::deserialize(&mut fields);
    fields.0
}

fn table_names() -> String {
    let names: BTreeSet<&str> = TABLES.iter().map(|(t, _)| *t).collect();
    names
        .into_iter()
        .map(|t| match t {
            "export" => "[[export]]".to_string(),
            t => format!("[{t}]"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads the file. A missing file is fine when `required` is false (the
/// default path on a machine that has none): every setting keeps its
/// default.
pub fn load(path: &Path, required: bool) -> Result<FileSettings, Problem> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(FileSettings::default())
        }
        Err(e) => {
            return Err(Problem {
                file: path.into(),
                line: 0,
                key: String::new(),
                reason: format!("cannot read it: {e}"),
            })
        }
    };
    parse(path, &text)
}

/// Parses the text of a configuration file.
pub fn parse(path: &Path, text: &str) -> Result<FileSettings, Problem> {
    let at = |offset: Option<usize>, key: String, reason: String| Problem {
        file: path.into(),
        line: offset.map_or(1, |o| line_of(text, o)),
        key,
        reason,
    };
    let doc = ImDocument::parse(text).map_err(|e| {
        let reason = e.message().trim().to_string();
        at(
            e.span().map(|s| s.start),
            String::new(),
            format!("not valid TOML: {reason}"),
        )
    })?;
    let file = File::deserialize(toml_edit::de::Deserializer::from(doc.clone())).map_err(|e| {
        let offset = e.span().map(|s| s.start);
        match offset.and_then(|o| place_at(&doc, o)) {
            Some(place) => match misplaced(&place) {
                Some(reason) => at(place.key.map(|k| k.start).or(offset), place.dotted, reason),
                None => at(offset, place.dotted, e.message().to_string()),
            },
            None => at(offset, String::new(), e.message().to_string()),
        }
    })?;
    Ok(file.into())
}

/// What is wrong with the key at `place` itself, if anything is: a key or
/// table the file does not have, or a table where a value belongs. (Else
/// the error is about its value, and says so itself.)
fn misplaced(place: &Place) -> Option<String> {
    let known = keys();
    let (table, key) = place.dotted.split_once('.').unwrap_or(("", &place.dotted));
    let is_table_name = TABLES.iter().any(|(t, _)| *t == key);
    let known_here = |table: &str| {
        let here: Vec<&str> = known
            .iter()
            .filter(|(t, _)| *t == table)
            .map(|(_, k)| *k)
            .collect();
        format!("unknown key; known here: {}", here.join(", "))
    };
    match (place.depth, place.kind) {
        (0, Kind::ArrayOfTables) if key == "export" => None,
        (0, Kind::ArrayOfTables) => {
            Some("arrays of tables are not used here; [[export]] is the one".into())
        }
        (0, Kind::Table) if !is_table_name => {
            Some(format!("unknown table; the tables are {}", table_names()))
        }
        (0, Kind::Table) => None,
        // a table's name given a value (a table in braces is read as the
        // table it is, where its name is a table's)
        (0, Kind::Value) if is_table_name => Some(known_here("")),
        (_, Kind::Table | Kind::ArrayOfTables) => Some("expected a value, not a table".into()),
        _ if known.iter().any(|(t, k)| *t == table && *k == key) => None,
        (0, Kind::InlineTable) if is_table_name => None,
        _ => Some(known_here(table)),
    }
}

/// What a key of the document holds, as far as placing an error goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Value,
    InlineTable,
    /// A `[table]`, or one made by dotted keys.
    Table,
    ArrayOfTables,
}

/// A key of the document and where it stands.
struct Place {
    dotted: String,
    /// 0 for a top-level key.
    depth: usize,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    kind: Kind,
}

/// The key an error at `offset` is about: the one whose name is there,
/// else the innermost whose value holds it.
fn place_at(doc: &ImDocument<&str>, offset: usize) -> Option<Place> {
    fn walk(table: &dyn TableLike, prefix: &str, depth: usize, out: &mut Vec<Place>) {
        for (name, _) in table.iter() {
            let Some((key, item)) = table.get_key_value(name) else {
                continue;
            };
            let dotted = match prefix {
                "" => name.to_string(),
                p => format!("{p}.{name}"),
            };
            if let Some(inner) = item.as_table_like() {
                walk(inner, &dotted, depth + 1, out);
            }
            if let Item::ArrayOfTables(tables) = item {
                for t in tables.iter() {
                    walk(t, &dotted, depth + 1, out);
                }
            }
            let kind = match item {
                Item::Table(_) => Kind::Table,
                Item::ArrayOfTables(_) => Kind::ArrayOfTables,
                Item::Value(v) if v.is_inline_table() => Kind::InlineTable,
                _ => Kind::Value,
            };
            out.push(Place {
                dotted,
                depth,
                key: key.span(),
                value: item.span(),
                kind,
            });
        }
    }
    let mut places = Vec::new();
    walk(doc.as_table(), "", 0, &mut places);
    let holds = |r: &Option<Range<usize>>| r.as_ref().is_some_and(|r| r.contains(&offset));
    let named = places.iter().position(|p| holds(&p.key));
    let inside = || {
        places
            .iter()
            .enumerate()
            .filter(|(_, p)| holds(&p.value))
            .min_by_key(|(_, p)| p.value.as_ref().map_or(usize::MAX, |r| r.len()))
            .map(|(i, _)| i)
    };
    let i = named.or_else(inside)?;
    Some(places.swap_remove(i))
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<FileSettings, Problem> {
        parse(Path::new("/etc/netev/netev.toml"), text)
    }

    /// The value a key was set to.
    fn v<T: Clone>(key: &Option<FileValue<T>>) -> Option<T> {
        key.as_ref().map(|k| k.value.clone())
    }

    /// The shipped file: every key, with its default, some commented out.
    const SHIPPED: &str = include_str!("../../../../dist/netev.toml");

    /// The shipped file with every commented-out key line in force.
    pub(in crate::config) fn shipped_with_every_key() -> String {
        SHIPPED
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest @ "[[export]]") => rest,
                Some(rest)
                    if keys()
                        .iter()
                        .any(|(_, k)| rest.starts_with(&format!("{k} ="))) =>
                {
                    rest
                }
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect()
    }

    #[test]
    fn every_documented_key_parses() {
        assert!(parse_str(SHIPPED).is_ok());
        // and with every commented-out key line in force
        let every = shipped_with_every_key();
        let s = parse_str(&every).unwrap();
        let f = &s.file;
        assert_eq!(v(&f.cgroup), Some("/sys/fs/cgroup".into()));
        assert_eq!(v(&f.store.host_name).as_deref(), Some("web-1"));
        assert_eq!(v(&f.rules.file), Some("/etc/netev/rules.toml".into()));
        assert_eq!(
            v(&f.metrics.listen),
            Some("127.0.0.1:9477".parse().unwrap())
        );
        assert_eq!(v(&f.bus), Some("system".parse().unwrap()));
        assert_eq!(v(&f.access_group).as_deref(), Some("netev"));
        assert_eq!(v(&f.state_dir), Some("/var/lib/netev".into()));
        assert_eq!(v(&f.run_dir), Some("/run/netev".into()));
        assert_eq!(v(&f.log_level).as_deref(), Some("info"));
        assert_eq!(v(&f.capture.coalesce), Some(true));
        assert_eq!(v(&f.capture.ringbuf_size), Some(8 << 20));
        assert_eq!(v(&f.store.url), Some(StoreSpec::Sqlite(None)));
        assert_eq!(v(&f.store.max_rows), Some(10_000_000));
        assert!(f.store.max_age.is_some());
        assert_eq!(v(&f.policy.prompt_timeout), Some(60));
        assert_eq!(s.ask_fallback, Some(Action::Deny));
        assert_eq!(s.policy.len(), 8, "default plus the seven ops");
        assert_eq!(s.policy[0], (PolicyKey::All, Action::Allow));
        let exports: Vec<String> = f.export.iter().map(|e| e.0.to_string()).collect();
        assert_eq!(
            exports,
            [
                "nats://127.0.0.1:4222?format=netev&creds=/etc/netev/nats.creds&ca=/etc/netev/nats-ca.pem",
                "file:/var/log/netev/events.json?format=ocsf",
            ]
        );
        assert!(parse_str(SHIPPED).unwrap().file.export.is_empty());
        // every key in KEYS appears in the shipped file
        for (t, k) in keys() {
            let line = format!("{k} =");
            assert!(
                every.lines().any(|l| l.starts_with(&line))
                    && (t.is_empty() || every.contains(&format!("[{t}]"))),
                "dist/netev.toml lacks {t}.{k}"
            );
        }
        let doc = include_str!("../../../../docs/configuration.md");
        for (t, k) in keys() {
            let dotted = if t.is_empty() {
                k.to_string()
            } else {
                format!("{t}.{k}")
            };
            assert!(doc.contains(&format!("`{dotted}`")), "docs lack `{dotted}`");
        }
    }

    #[test]
    fn an_empty_or_missing_file_sets_nothing() {
        assert_eq!(parse_str("").unwrap(), FileSettings::default());
        let missing = Path::new("/nonexistent/netev.toml");
        assert_eq!(load(missing, false).unwrap(), FileSettings::default());
        let e = load(missing, true).unwrap_err().to_string();
        assert!(
            e.starts_with("/nonexistent/netev.toml: cannot read it"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_file_line_and_key() {
        let cases: &[(&str, &str)] = &[
            (
                "bus = \"system\"\nstat_dir = \"/var/lib/netev\"\n",
                "/etc/netev/netev.toml:2: stat_dir: unknown key",
            ),
            (
                "[store]\nurl = \"sqlite\"\nmax_rows = -5\n",
                "/etc/netev/netev.toml:3: store.max_rows: -5 is negative",
            ),
            (
                "[store]\n\nurl = \"mysql://x\"\n",
                "/etc/netev/netev.toml:3: store.url: \"mysql://x\" is not a store",
            ),
            (
                "[capture]\nringbuf_size = \"3000\"\n",
                "/etc/netev/netev.toml:2: capture.ringbuf_size: 3000 is not a power of two",
            ),
            (
                "[capture]\ncoalesce = \"yes\"\n",
                "/etc/netev/netev.toml:2: capture.coalesce: expected true or false",
            ),
            (
                "[policy]\nconnect = \"maybe\"\n",
                "/etc/netev/netev.toml:2: policy.connect: ",
            ),
            (
                "[policy]\nask_fallback = \"ask\"\n",
                "/etc/netev/netev.toml:2: policy.ask_fallback: the ask fallback",
            ),
            (
                "[capture]\nbackend = \"lsm2\"\n",
                "/etc/netev/netev.toml:2: capture.backend: \"lsm2\" is not a backend: one of auto, lsm, cgroup",
            ),
            (
                "[polcy]\nconnect = \"deny\"\n",
                "/etc/netev/netev.toml:1: polcy: unknown table",
            ),
            (
                "state_dir = \"var/lib\"\n",
                "/etc/netev/netev.toml:1: state_dir: \"var/lib\" is not an absolute path",
            ),
            ("bus = \n", "/etc/netev/netev.toml:1: not valid TOML"),
            (
                "log_level = \"info,,=[\"\n",
                "/etc/netev/netev.toml:1: log_level: ",
            ),
        ];
        for (text, want) in cases {
            let got = parse_str(text).unwrap_err().to_string();
            assert!(
                got.starts_with(want),
                "{text:?}: got {got:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn export_tables_are_read_in_order_and_their_mistakes_placed() {
        let s = parse_str(
            "[[export]]\nurl = \"syslog+udp://127.0.0.1:514\"\n\n[[export]]\nurl = \"file:/tmp/e.json\"\nkeep = 2\nrotate = \"1M\"\n",
        )
        .unwrap();
        let t: Vec<String> = s.file.export.iter().map(|e| e.0.to_string()).collect();
        assert_eq!(
            t,
            [
                "syslog+udp://127.0.0.1:514?format=netev",
                "file:/tmp/e.json?format=netev&rotate=1048576&keep=2"
            ]
        );
        for (text, says) in [
            (
                "[[export]]\nformat = \"ocsf\"\n",
                "/etc/netev/netev.toml:1: export: missing field `url`",
            ),
            (
                "[[export]]\nurl = \"nats://a:1\"\nkeep = 2\n",
                "keep: not an option",
            ),
            (
                "\n[[export]]\nurl = \"nats://a:1\"\nwhat = 2\n",
                "/etc/netev/netev.toml:4: export.what: unknown key",
            ),
            ("[[export]]\nurl = \"kafka://a:1\"\n", "unknown kind"),
            ("[[export]]\nurl = \"nats://u:p@a:1\"\n", "creds file"),
            (
                "[[store]]\nurl = \"sqlite\"\n",
                "arrays of tables are not used here",
            ),
        ] {
            let e = parse_str(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn problems_in_other_layouts_name_their_key_and_line() {
        let cases: &[(&str, &str)] = &[
            (
                "[store]\nmax_rows = 5\nurl = \"sqlite\"\ncolour = \"red\"\n",
                "/etc/netev/netev.toml:4: store.colour: unknown key; known here: url, max_age, max_rows, host_name",
            ),
            (
                "[polcy]\n",
                "/etc/netev/netev.toml:1: polcy: unknown table; the tables are [capture], [[export]], [metrics], [policy], [rules], [store]",
            ),
            (
                "stat_dir = 1\n",
                "/etc/netev/netev.toml:1: stat_dir: unknown key; known here: cgroup, bus, access_group, state_dir, run_dir, log_level, pin_dir",
            ),
            (
                "[policy]\ndefault = \"allow\"\nconect = \"deny\"\n",
                "/etc/netev/netev.toml:3: policy.conect: unknown key; known here: default, socket, bind",
            ),
            // an inline table, and a dotted key
            (
                "bus = \"none\"\ncapture = { ringbuf_size = 8388608, coalesce = \"no\" }\n",
                "/etc/netev/netev.toml:2: capture.coalesce: expected true or false, found string",
            ),
            (
                "bus = \"none\"\n\nstore.max_rows = 1.5\n",
                "/etc/netev/netev.toml:3: store.max_rows: expected a whole number, found float",
            ),
            (
                "[policy]\nprompt_timeout = 0\n",
                "/etc/netev/netev.toml:2: policy.prompt_timeout: 0 seconds",
            ),
            (
                "[store]\nmax_age = 2026-01-01\n",
                "/etc/netev/netev.toml:2: store.max_age: expected a string in quotes, found datetime",
            ),
            // as before the file was read by serde
            (
                "capture = 5\n",
                "/etc/netev/netev.toml:1: capture: unknown key; known here: cgroup, bus",
            ),
            ("[[bus]]\n", "/etc/netev/netev.toml:1: bus: arrays of tables are not used here"),
            (
                "[store.url]\nx = 1\n",
                "/etc/netev/netev.toml:1: store.url: expected a value, not a table",
            ),
            (
                "[bus]\n",
                "/etc/netev/netev.toml:1: bus: unknown table; the tables are",
            ),
            (
                "[store]\nurl = { x = 1 }\n",
                "/etc/netev/netev.toml:2: store.url: expected a string in quotes, found inline table",
            ),
        ];
        for (text, want) in cases {
            let got = parse_str(text).unwrap_err().to_string();
            assert!(
                got.starts_with(want),
                "{text:?}: got {got:?}, want {want:?}"
            );
        }
    }
}

/// Fuzzing on stable Rust: the configuration file fed arbitrary and
/// near-valid text, an answer or a problem with its line, never a panic.
/// `NETEV_FUZZ_CASES` sets the cases (docs/operations.md, "Fuzzing").
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;
    use std::path::Path;

    fn cases() -> u32 {
        std::env::var("NETEV_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4096)
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(vec![
                "bus",
                "access_group",
                "backend",
                "cgroup",
                "coalesce",
                "ringbuf_size",
                "prompt_timeout",
                "state_dir",
                "run_dir",
                "pin_dir",
                "log_level",
                "print",
            ])
            .prop_map(str::to_string),
            "[a-z_.]{1,12}",
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>().prop_map(|s| format!("{s:?}")),
            "[0-9]{1,22}",
            Just("true".to_string()),
            Just("[1, 2]".to_string()),
            Just("{ a = 1 }".to_string()),
            Just("\"64K\"".to_string()),
            Just("\"-5s\"".to_string()),
            Just("\"sqlite:/x.db\"".to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_text_is_settings_or_a_problem(text in any::<String>()) {
            let _ = super::parse(Path::new("fuzz.toml"), &text);
        }

        #[test]
        fn near_valid_files_are_settings_or_a_problem(
            sections in proptest::collection::vec(
                (proptest::sample::select(vec!["", "[store]", "[rules]", "[policy]", "[prompt]", "[x]"]),
                 proptest::collection::vec((key(), value()), 0..5)),
                0..4)
        ) {
            let mut text = String::new();
            for (section, pairs) in &sections {
                text.push_str(section);
                text.push('\n');
                for (k, v) in pairs {
                    text.push_str(&format!("{k} = {v}\n"));
                }
            }
            let _ = super::parse(Path::new("fuzz.toml"), &text);
        }
    }
}

//! EIP-712 type definitions: parsing `types`, `encodeType`, typehashes, and the checks that
//! make a type set encodable at all (declared names, no cycle that no finite value fills).

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

use alloy_primitives::{keccak256, B256};

use crate::error::{fail, Code, Error, Result};
use crate::json::{Object, Value};
use crate::primitives::trunc;

/// Most struct types one document may declare (a bound checked while `types` is read).
pub const MAX_STRUCTS: usize = 256;
/// Most fields one struct type may declare.
pub const MAX_FIELDS: usize = 256;
/// Most array dimensions one field type may have (`T[][]...`).
pub const MAX_ARRAY_DIMS: usize = 8;
/// Bounds a fixed array length so a declared `T[1000000000]` cannot drive work on its own.
pub const MAX_FIXED_ARRAY_LEN: usize = 65_536;

/// The type of one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// `address`.
    Address,
    /// `bool`.
    Bool,
    /// `string` (hashed).
    String,
    /// `bytes` (hashed).
    Bytes,
    /// `bytes1` .. `bytes32`.
    FixedBytes(u8),
    /// `uint8` .. `uint256`, in bits.
    Uint(u16),
    /// `int8` .. `int256`, in bits.
    Int(u16),
    /// A declared struct, by index into its `TypeSet`.
    Struct(usize),
    /// `T[]` (None) or `T[k]`.
    Array(Box<FieldType>, Option<usize>),
}

/// One member of a struct type.
#[derive(Clone, Debug)]
pub struct Field {
    /// The member's name.
    pub name: String,
    /// The member's type, resolved.
    pub ty: FieldType,
    /// The type exactly as declared; `encodeType` prints it back.
    pub type_str: String,
}

/// One declared struct type.
#[derive(Clone, Debug)]
pub struct StructType {
    /// The type's name.
    pub name: String,
    /// Its members, in declaration order (the order they are encoded in).
    pub fields: Vec<Field>,
    /// Length of this struct's own part of an encodeType text: `Name(type name,...)`.
    def_len: usize,
}

/// The struct types of one document, resolved and hashed.
#[derive(Clone, Debug)]
pub struct TypeSet {
    structs: Vec<StructType>,
    by_name: HashMap<String, usize>,
    /// Computed on first use: most documents declare types the message never reaches.
    type_hashes: Vec<OnceCell<B256>>,
}

/// Most entries the typehash cache keeps; past it, hashes are computed and not remembered.
const TYPE_HASH_CACHE_ENTRIES: usize = 4096;
/// Longest encodeType text the cache keeps. Real ones are a few hundred bytes (Permit2's
/// witness types about 300); a longer one is hashed each time it is needed, so documents
/// with long attacker-chosen names cannot pin memory.
pub const TYPE_HASH_CACHE_MAX_LEN: usize = 1024;
/// Most bytes of encodeType text the cache holds in all.
pub const TYPE_HASH_CACHE_BYTES: usize = 1 << 20;

#[derive(Default)]
struct TypeHashCache {
    map: HashMap<String, B256>,
    bytes: usize,
}

static CACHE: LazyLock<RwLock<TypeHashCache>> = LazyLock::new(Default::default);

/// `keccak256(encodeType)`, remembered: gateways hash the same few type strings millions of
/// times. Bounded in entries and in bytes, so attacker-chosen type strings cannot grow it.
pub fn type_hash_of(encoded_type: &str) -> B256 {
    if encoded_type.len() > TYPE_HASH_CACHE_MAX_LEN {
        return keccak256(encoded_type.as_bytes());
    }
    if let Some(h) = CACHE.read().unwrap_or_else(|p| p.into_inner()).map.get(encoded_type) {
        return *h;
    }
    let h = keccak256(encoded_type.as_bytes());
    let mut cache = CACHE.write().unwrap_or_else(|p| p.into_inner());
    if cache.map.len() < TYPE_HASH_CACHE_ENTRIES && cache.bytes + encoded_type.len() <= TYPE_HASH_CACHE_BYTES && !cache.map.contains_key(encoded_type) {
        cache.bytes += encoded_type.len();
        cache.map.insert(encoded_type.to_owned(), h);
    }
    h
}

/// Bytes of encodeType text the typehash cache holds now (an observable for tests).
#[doc(hidden)]
pub fn type_hash_cache_bytes() -> usize {
    CACHE.read().unwrap_or_else(|p| p.into_inner()).bytes
}

/// The encodeType texts of one document's struct types may total this much in all, plus
/// `ENCODE_TYPE_FACTOR` times the length of the definitions themselves. Each struct's text
/// repeats every struct it reaches, so without a bound a chain of small structs over one
/// long name costs hundreds of times the document's size; real documents stay far below.
pub const ENCODE_TYPE_ALLOWANCE: usize = 64 * 1024;
/// See `ENCODE_TYPE_ALLOWANCE`.
pub const ENCODE_TYPE_FACTOR: usize = 4;

fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b'$') && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
}

/// Parses an atomic type name; `None` means "not atomic" (so a struct name). A name shaped like
/// a sized atomic (`uint` / `int` / `bytes` followed by digits only) must have a valid size;
/// other names that merely start that way (`intent`, `bytesFoo`) are struct names.
pub fn parse_atomic(name: &str) -> Result<Option<FieldType>> {
    Ok(Some(match name {
        "address" => FieldType::Address,
        "bool" => FieldType::Bool,
        "string" => FieldType::String,
        "bytes" => FieldType::Bytes,
        // Solidity's aliases: EIP-712 encodes the full name, so an alias would hash differently.
        "int" | "uint" => return fail(Code::InvalidTypeName, format!("{name:?} is an alias; EIP-712 needs {name}256")),
        _ => {
            let Some((prefix, digits)) = split_sized(name) else {
                return Ok(None);
            };
            let n: u16 = digits.parse().unwrap_or(0);
            let valid = digits.len() <= 3 && !digits.starts_with('0');
            match prefix {
                "bytes" if valid && (1..=32).contains(&n) => FieldType::FixedBytes(n as u8),
                "uint" if valid && (8..=256).contains(&n) && n % 8 == 0 => FieldType::Uint(n),
                "int" if valid && (8..=256).contains(&n) && n % 8 == 0 => FieldType::Int(n),
                _ => return fail(Code::InvalidTypeName, format!("{name:?} is not an EIP-712 atomic type")),
            }
        }
    }))
}

/// `("uint", "256")` for `uint256`: a sized-atomic prefix followed by ASCII digits only.
fn split_sized(name: &str) -> Option<(&str, &str)> {
    ["uint", "int", "bytes"].into_iter().find_map(|p| {
        let rest = name.strip_prefix(p)?;
        (!rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())).then_some((p, rest))
    })
}

/// Splits `Base[2][]` into the base name and its dimensions, outermost last.
fn split_array_dims(type_str: &str) -> Result<(&str, Vec<Option<usize>>)> {
    let bad = |why: &str| Error::new(Code::InvalidTypeName, format!("type {:?}: {why}", trunc(type_str)));
    let base_end = type_str.find('[').unwrap_or(type_str.len());
    let (base, mut rest) = type_str.split_at(base_end);
    let mut dims = Vec::new();
    while !rest.is_empty() {
        let close = rest.find(']').ok_or_else(|| bad("unclosed ["))?;
        let inner = &rest[1..close];
        let dim = if inner.is_empty() {
            None
        } else {
            if !inner.bytes().all(|b| b.is_ascii_digit()) || (inner.len() > 1 && inner.starts_with('0')) {
                return Err(bad("array length must be a canonical decimal"));
            }
            let n: usize = inner.parse().map_err(|_| bad("array length too large"))?;
            if n > MAX_FIXED_ARRAY_LEN {
                return Err(Error::new(Code::LimitExceeded, format!("fixed array length {n} exceeds {MAX_FIXED_ARRAY_LEN}")));
            }
            Some(n)
        };
        dims.push(dim);
        if dims.len() > MAX_ARRAY_DIMS {
            return Err(Error::new(Code::LimitExceeded, format!("more than {MAX_ARRAY_DIMS} array dimensions")));
        }
        rest = &rest[close + 1..];
        if !rest.is_empty() && !rest.starts_with('[') {
            return Err(bad("text after array brackets"));
        }
    }
    Ok((base, dims))
}

impl TypeSet {
    /// Reads the `types` object: `{Name: [{name, type}, ...], ...}`.
    pub fn from_json(types: &Object) -> Result<Self> {
        if types.len() > MAX_STRUCTS {
            return fail(Code::LimitExceeded, format!("more than {MAX_STRUCTS} struct types"));
        }
        let mut by_name = HashMap::with_capacity(types.len());
        for (i, name) in types.keys().enumerate() {
            if !is_identifier(name) {
                return Err(Error::new(Code::InvalidTypeName, format!("{:?} is not a valid type name", trunc(name))).at_key(name));
            }
            if split_sized(name).is_some() || matches!(name, "address" | "bool" | "string" | "bytes" | "int" | "uint") {
                return Err(Error::new(Code::InvalidTypeDefinition, format!("{name:?} redefines an atomic type")).at_key(name));
            }
            by_name.insert(name.to_owned(), i);
        }
        let mut structs = Vec::with_capacity(types.len());
        for (name, def) in types.iter() {
            let st = Self::read_struct(name, def, &by_name).map_err(|e| e.at_key(name))?;
            structs.push(st);
        }
        let type_hashes = (0..structs.len()).map(|_| OnceCell::new()).collect();
        let set = TypeSet { structs, by_name, type_hashes };
        set.check_encode_work()?;
        Ok(set)
    }

    fn read_struct(name: &str, def: &Value, by_name: &HashMap<String, usize>) -> Result<StructType> {
        let Value::Array(members) = def else {
            return fail(Code::InvalidTypedData, format!("a type definition is an array of {{name, type}}, got {}", def.kind()));
        };
        if members.len() > MAX_FIELDS {
            return fail(Code::LimitExceeded, format!("more than {MAX_FIELDS} fields"));
        }
        let mut fields: Vec<Field> = Vec::with_capacity(members.len());
        // Up to 256 fields: a scan per field is quadratic, so long structs use a set.
        let mut seen = std::collections::HashSet::new();
        for (i, m) in members.iter().enumerate() {
            let field = Self::read_field(m, by_name).map_err(|e| e.at_index(i))?;
            let repeated = if members.len() <= 16 { fields.iter().any(|f| f.name == field.name) } else { !seen.insert(field.name.clone()) };
            if repeated {
                return Err(Error::new(Code::InvalidTypeDefinition, format!("field {:?} is declared twice", field.name)).at_index(i));
            }
            fields.push(field);
        }
        let def_len = name.len() + 2 + fields.iter().map(|f| f.type_str.len() + 1 + f.name.len()).sum::<usize>() + fields.len().saturating_sub(1);
        Ok(StructType { name: name.to_owned(), fields, def_len })
    }

    fn read_field(m: &Value, by_name: &HashMap<String, usize>) -> Result<Field> {
        let obj = m.as_object().ok_or_else(|| Error::new(Code::InvalidTypedData, "a member is an object {name, type}"))?;
        for key in obj.keys() {
            if key != "name" && key != "type" {
                return Err(Error::new(Code::UnknownField, format!("unexpected key {:?} in a member", trunc(key))).at_key(key));
            }
        }
        let get = |k: &str| -> Result<&str> {
            match obj.get(k) {
                Some(Value::Str(s)) => Ok(s),
                Some(v) => Err(Error::new(Code::InvalidValueType, format!("member {k} must be a string, got {}", v.kind())).at_key(k)),
                None => Err(Error::new(Code::MissingField, format!("member has no {k}")).at_key(k)),
            }
        };
        let name = get("name")?;
        let type_str = get("type")?;
        if !is_identifier(name) {
            return Err(Error::new(Code::InvalidTypeName, format!("{:?} is not a valid field name", trunc(name))).at_key("name"));
        }
        let ty = Self::resolve(type_str, by_name).map_err(|e| e.at_key("type"))?;
        Ok(Field { name: name.to_owned(), ty, type_str: type_str.to_owned() })
    }

    fn resolve(type_str: &str, by_name: &HashMap<String, usize>) -> Result<FieldType> {
        let (base, dims) = split_array_dims(type_str)?;
        let mut ty = match parse_atomic(base)? {
            Some(t) => t,
            None => {
                if !is_identifier(base) {
                    return fail(Code::InvalidTypeName, format!("{:?} is not a valid type", trunc(type_str)));
                }
                FieldType::Struct(*by_name.get(base).ok_or_else(|| Error::new(Code::UndeclaredType, format!("type {:?} is not declared", trunc(base))))?)
            }
        };
        for d in dims {
            ty = FieldType::Array(Box::new(ty), d);
        }
        Ok(ty)
    }

    /// The index of the struct type called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The struct type at `idx` (an index from this set).
    pub fn get(&self, idx: usize) -> &StructType {
        &self.structs[idx]
    }

    /// `keccak256(encodeType)` of the struct type at `idx`, computed once.
    pub fn type_hash(&self, idx: usize) -> &B256 {
        self.type_hashes[idx].get_or_init(|| type_hash_of(&self.encode_type(idx)))
    }

    /// Fails with `limit_exceeded` if the encodeType texts of all the struct types (each one
    /// with every struct it reaches) would total more than the allowance, before any is built.
    fn check_encode_work(&self) -> Result<()> {
        let defs: usize = self.structs.iter().map(|s| s.def_len).sum();
        let budget = ENCODE_TYPE_ALLOWANCE.saturating_add(ENCODE_TYPE_FACTOR.saturating_mul(defs));
        // No text is longer than all the definitions once: most documents stop here.
        if self.structs.len().saturating_mul(defs) <= budget {
            return Ok(());
        }
        let mut total = 0usize;
        for i in 0..self.structs.len() {
            total += self.encode_type_len(i);
            if total > budget {
                return fail(
                    Code::LimitExceeded,
                    format!(
                        "the struct types' encodeType texts would total more than {budget} bytes ({ENCODE_TYPE_ALLOWANCE} + {ENCODE_TYPE_FACTOR} x the {defs} bytes of their definitions): long type names repeated through many structs"
                    ),
                );
            }
        }
        Ok(())
    }

    /// `encode_type(idx).len()`, without building it.
    pub fn encode_type_len(&self, idx: usize) -> usize {
        self.structs[idx].def_len + self.dependencies(idx).iter().map(|&j| self.structs[j].def_len).sum::<usize>()
    }

    /// Struct types reachable from `idx` (not counting `idx` itself unless it recurses).
    fn dependencies(&self, idx: usize) -> Vec<usize> {
        let mut seen = vec![false; self.structs.len()];
        let mut stack = vec![idx];
        let mut out = Vec::new();
        while let Some(i) = stack.pop() {
            for f in &self.structs[i].fields {
                let mut t = &f.ty;
                while let FieldType::Array(inner, _) = t {
                    t = inner;
                }
                if let FieldType::Struct(j) = *t {
                    if !seen[j] {
                        seen[j] = true;
                        if j != idx {
                            out.push(j);
                        }
                        stack.push(j);
                    }
                }
            }
        }
        out
    }

    /// `encodeType`: `Name(type name,...)` then every referenced struct, sorted by name.
    pub fn encode_type(&self, idx: usize) -> String {
        let mut deps = self.dependencies(idx);
        deps.sort_by(|&a, &b| self.structs[a].name.as_bytes().cmp(self.structs[b].name.as_bytes()));
        let mut out = String::new();
        for i in std::iter::once(idx).chain(deps) {
            let st = &self.structs[i];
            out.push_str(&st.name);
            out.push('(');
            for (k, f) in st.fields.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                out.push_str(&f.type_str);
                out.push(' ');
                out.push_str(&f.name);
            }
            out.push(')');
        }
        out
    }

    /// Fails with `cyclic_type` if `idx` or a struct it reaches can hold no finite value: a
    /// cycle through plain struct members or non-empty fixed arrays never bottoms out, while
    /// one through a dynamic array does (the empty array ends it).
    pub fn check_encodable(&self, idx: usize) -> Result<()> {
        let n = self.structs.len();
        let mut finite = vec![false; n];
        let fits = |t: &FieldType, finite: &[bool]| -> bool {
            let mut t = t;
            loop {
                match t {
                    FieldType::Array(_, None) | FieldType::Array(_, Some(0)) => return true,
                    FieldType::Array(inner, Some(_)) => t = inner,
                    FieldType::Struct(j) => return finite[*j],
                    _ => return true,
                }
            }
        };
        loop {
            let mut changed = false;
            for i in 0..n {
                if !finite[i] && self.structs[i].fields.iter().all(|f| fits(&f.ty, &finite)) {
                    finite[i] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        for i in std::iter::once(idx).chain(self.dependencies(idx)) {
            if !finite[i] {
                return fail(Code::CyclicType, format!("type {:?} refers to itself through members no finite value can fill", self.structs[i].name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    fn set(json: &str) -> Result<TypeSet> {
        let v = parse(json.as_bytes()).unwrap();
        TypeSet::from_json(v.as_object().unwrap())
    }

    #[test]
    fn mail_encode_type() {
        let ts = set(r#"{"Mail":[{"name":"from","type":"Person"},{"name":"to","type":"Person"},{"name":"contents","type":"string"}],
                        "Person":[{"name":"name","type":"string"},{"name":"wallet","type":"address"}]}"#)
        .unwrap();
        let mail = ts.index_of("Mail").unwrap();
        assert_eq!(ts.encode_type(mail), "Mail(Person from,Person to,string contents)Person(string name,address wallet)");
    }

    #[test]
    fn errors() {
        assert_eq!(set(r#"{"A":[{"name":"b","type":"B"}]}"#).unwrap_err().code, Code::UndeclaredType);
        assert_eq!(set(r#"{"A":[{"name":"b","type":"uint7"}]}"#).unwrap_err().code, Code::InvalidTypeName);
        assert_eq!(set(r#"{"A":[{"name":"b","type":"bytes33"}]}"#).unwrap_err().code, Code::InvalidTypeName);
        assert_eq!(set(r#"{"A":[{"name":"b","type":"uint256[01]"}]}"#).unwrap_err().code, Code::InvalidTypeName);
        assert_eq!(set(r#"{"A":[{"name":"b","type":"uint+8"}]}"#).unwrap_err().code, Code::InvalidTypeName);
        assert_eq!(set(r#"{"A":[{"name":"b","type":"uint08"}]}"#).unwrap_err().code, Code::InvalidTypeName);
        // Names that only start like atomic types are ordinary struct names.
        assert!(set(r#"{"A":[{"name":"b","type":"intent"}],"intent":[{"name":"f","type":"bool"}]}"#).is_ok());
        assert_eq!(set(r#"{"A":[{"name":"b","type":"uint256"},{"name":"b","type":"bool"}]}"#).unwrap_err().code, Code::InvalidTypeDefinition);
        assert_eq!(set(r#"{"uint256":[]}"#).unwrap_err().code, Code::InvalidTypeDefinition);
        assert_eq!(set(r#"{"A":[{"name":"b","type":"bool","x":1}]}"#).unwrap_err().code, Code::UnknownField);
        let e = set(r#"{"A":[{"name":"ok","type":"bool"},{"name":"b","type":"Nope[]"}]}"#).unwrap_err();
        assert_eq!((e.code, e.path()), (Code::UndeclaredType, "A[1].type".to_owned()));
    }

    #[test]
    fn cycles() {
        let ts = set(r#"{"A":[{"name":"b","type":"B"}],"B":[{"name":"a","type":"A"}]}"#).unwrap();
        assert_eq!(ts.check_encodable(0).unwrap_err().code, Code::CyclicType);
        let ts = set(r#"{"A":[{"name":"a","type":"A[2]"}]}"#).unwrap();
        assert_eq!(ts.check_encodable(0).unwrap_err().code, Code::CyclicType);
        let ts = set(r#"{"Node":[{"name":"kids","type":"Node[]"},{"name":"v","type":"uint8"}]}"#).unwrap();
        assert!(ts.check_encodable(0).is_ok());
        assert_eq!(ts.encode_type(0), "Node(Node[] kids,uint8 v)");
    }

    /// The shape of issue 10 item 5: a chain of small structs, the last of which refers to one
    /// struct with a long name, so every struct's encodeType repeats the long name.
    pub(crate) fn chain_types(links: usize, long_name_len: usize) -> String {
        let big = format!("B{}", "x".repeat(long_name_len - 1));
        let mut out = String::from("{");
        for i in 0..links {
            let next = if i + 1 < links { format!("S{}[]", i + 1) } else { big.clone() };
            out.push_str(&format!(r#""S{i}":[{{"name":"n","type":"{next}"}}],"#));
        }
        out.push_str(&format!(r#""{big}":[{{"name":"v","type":"bool"}}]}}"#));
        out
    }

    #[test]
    fn encode_type_len_is_exact() {
        let ts = set(r#"{"Mail":[{"name":"from","type":"Person"},{"name":"to","type":"Person[2]"},{"name":"contents","type":"string"}],
                        "Person":[{"name":"name","type":"string"},{"name":"wallet","type":"address"},{"name":"me","type":"Person[]"}],"E":[]}"#)
        .unwrap();
        for i in 0..3 {
            assert_eq!(ts.encode_type_len(i), ts.encode_type(i).len());
        }
        let ts = set(&chain_types(20, 50)).unwrap();
        for i in 0..21 {
            assert_eq!(ts.encode_type_len(i), ts.encode_type(i).len());
        }
    }

    #[test]
    fn encode_type_work_is_bounded() {
        // 250 links over a 120 KB name: about 60 MB of encodeType text for a 240 KB document.
        let e = set(&chain_types(250, 120_000)).unwrap_err();
        assert_eq!(e.code, Code::LimitExceeded, "{e:?}");
        // The same chain with short names, and a long name nobody repeats, are fine.
        assert!(set(&chain_types(30, 20)).is_ok());
        assert!(set(&chain_types(1, 200_000)).is_ok());
    }

    #[test]
    fn type_hash_cache_is_bounded_in_bytes() {
        // Long texts are hashed but never kept.
        let long = "L".repeat(TYPE_HASH_CACHE_MAX_LEN + 1);
        assert_eq!(type_hash_of(&long), keccak256(long.as_bytes()));
        assert!(!CACHE.read().unwrap().map.contains_key(&long));
        // Many distinct texts at the longest kept length fill it to its byte bound, no further.
        for i in 0..(TYPE_HASH_CACHE_BYTES / TYPE_HASH_CACHE_MAX_LEN + 50) {
            let mut t = format!("T{i}(");
            t.push_str(&"a".repeat(TYPE_HASH_CACHE_MAX_LEN - t.len()));
            assert_eq!(type_hash_of(&t), keccak256(t.as_bytes()));
        }
        let cache = CACHE.read().unwrap();
        assert!(cache.bytes <= TYPE_HASH_CACHE_BYTES && cache.bytes == cache.map.keys().map(String::len).sum::<usize>());
        assert!(type_hash_cache_bytes() <= TYPE_HASH_CACHE_BYTES);
    }
}

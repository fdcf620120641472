//! The pickle stack machine: runs the opcodes a state dict uses and calls only whitelisted globals.
use std::collections::HashMap;

use super::op;
use super::tensors::{check_view, StorageDecl, StorageRef, TensorRef};
use super::value::{resolve_global, shown, Dict, Global, Id, Obj, Pickle, Res};

/// Runs the pickle that starts at `data[start]` up to its STOP; returns it and the offset after STOP.
/// `what` names the pickle in errors, which also give the opcode's byte offset in `data`.
pub(super) fn unpickle(data: &[u8], start: usize, what: &str) -> Res<(Pickle, usize)> {
    let mut m = Machine { data, pos: start, ..Machine::default() };
    loop {
        let at = m.pos;
        let step = match m.byte() {
            Ok(opcode) => m.step(opcode),
            Err(e) => Err(e),
        };
        match step {
            Ok(None) => {}
            Ok(Some(root)) => {
                let pickle = Pickle { objs: m.objs, root, storages: m.storages };
                return Ok((pickle, m.pos));
            }
            Err(msg) => return Err(format!("{msg} (at byte {at} of {what})")),
        }
    }
}

#[derive(Default)]
struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    objs: Vec<Obj>,
    stack: Vec<Id>,
    /// Stack heights at each open MARK (CPython's metastack).
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
    storages: HashMap<String, StorageDecl>,
}

impl<'a> Machine<'a> {
    /// Executes one opcode; returns the root object at STOP.
    fn step(&mut self, opcode: u8) -> Res<Option<Id>> {
        if opcode == op::STOP {
            return self.pop().map(Some);
        }
        let known = self.stack_op(opcode)?
            || self.number_op(opcode)?
            || self.bytes_op(opcode)?
            || self.container_op(opcode)?
            || self.memo_op(opcode)?
            || self.object_op(opcode)?;
        if !known {
            return Err(format!(
                "unsupported pickle opcode {} (0x{opcode:02x}); only tensor state dicts are read",
                op::name(opcode)
            ));
        }
        Ok(None)
    }

    /// Framing and the stack: protocol, frames, marks, pops, duplicates.
    /// Returns whether `opcode` is one of them.
    fn stack_op(&mut self, opcode: u8) -> Res<bool> {
        match opcode {
            op::PROTO => {
                let version = self.byte()?;
                if version > 5 {
                    return Err(format!("pickle protocol {version} is newer than 5"));
                }
            }
            // A hint for buffered readers: the frame's opcodes follow inline.
            op::FRAME => {
                self.take(8)?;
            }
            op::MARK => self.marks.push(self.stack.len()),
            op::POP => {
                self.pop()?;
            }
            op::POP_MARK => {
                self.pop_mark()?;
            }
            op::DUP => {
                let top = self.top()?;
                self.stack.push(top);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// None, booleans, integers and floats.
    /// Returns whether `opcode` is one of them.
    fn number_op(&mut self, opcode: u8) -> Res<bool> {
        match opcode {
            op::NONE => self.push(Obj::None),
            op::NEWTRUE | op::NEWFALSE => self.push(Obj::Bool(opcode == op::NEWTRUE)),
            op::BININT => {
                let v = i32::from_le_bytes(self.array()?);
                self.push(Obj::Int(v.into()));
            }
            op::BININT1 => {
                let v = self.byte()?;
                self.push(Obj::Int(v.into()));
            }
            op::BININT2 => {
                let v = u16::from_le_bytes(self.array()?);
                self.push(Obj::Int(v.into()));
            }
            op::LONG1 => {
                let n = self.byte()? as usize;
                let obj = long(self.take(n)?);
                self.push(obj);
            }
            op::LONG4 => {
                let n = self.len32()?;
                let obj = long(self.take(n)?);
                self.push(obj);
            }
            op::BINFLOAT => {
                // Big-endian, as pickle writes it.
                let v = f64::from_be_bytes(self.array()?);
                self.push(Obj::Float(v));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Strings and bytes.
    /// Returns whether `opcode` is one of them.
    fn bytes_op(&mut self, opcode: u8) -> Res<bool> {
        match opcode {
            op::SHORT_BINUNICODE => {
                let n = self.byte()? as usize;
                self.push_str(n)?;
            }
            op::BINUNICODE => {
                let n = self.len32()?;
                self.push_str(n)?;
            }
            op::BINUNICODE8 => {
                let n = self.len64()?;
                self.push_str(n)?;
            }
            // Python 2 str: torch.load decodes them with encoding='utf-8'.
            op::SHORT_BINSTRING => {
                let n = self.byte()? as usize;
                self.push_str(n)?;
            }
            op::BINSTRING => {
                let n = self.len32()?;
                self.push_str(n)?;
            }
            op::SHORT_BINBYTES => {
                let n = self.byte()? as usize;
                let b = self.take(n)?.to_vec();
                self.push(Obj::Bytes(b));
            }
            op::BINBYTES => {
                let n = self.len32()?;
                let b = self.take(n)?.to_vec();
                self.push(Obj::Bytes(b));
            }
            op::BINBYTES8 => {
                let n = self.len64()?;
                let b = self.take(n)?.to_vec();
                self.push(Obj::Bytes(b));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Tuples, lists and dicts.
    /// Returns whether `opcode` is one of them.
    fn container_op(&mut self, opcode: u8) -> Res<bool> {
        match opcode {
            op::EMPTY_TUPLE => self.push(Obj::Tuple(Vec::new())),
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = usize::from(opcode - op::TUPLE1) + 1;
                let at = self.stack.len().checked_sub(n).filter(|&at| at >= self.floor());
                let at = at.ok_or("pickle stack underflow")?;
                let items = self.stack.split_off(at);
                self.push(Obj::Tuple(items));
            }
            op::TUPLE => {
                let items = self.pop_mark()?;
                self.push(Obj::Tuple(items));
            }
            op::EMPTY_LIST => self.push(Obj::List(Vec::new())),
            op::APPEND => {
                let item = self.pop()?;
                let list = self.top()?;
                self.list_mut(list)?.push(item);
            }
            op::APPENDS => {
                let items = self.pop_mark()?;
                let list = self.top()?;
                self.list_mut(list)?.extend(items);
            }
            op::EMPTY_DICT => self.push(Obj::Dict(Dict::default())),
            op::SETITEM => {
                let value = self.pop()?;
                let key = self.pop()?;
                let dict = self.top()?;
                self.set_item(dict, key, value)?;
            }
            op::SETITEMS => {
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    return Err("SETITEMS with an odd number of items".into());
                }
                let dict = self.top()?;
                for pair in items.chunks_exact(2) {
                    self.set_item(dict, pair[0], pair[1])?;
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The memo: put and get.
    /// Returns whether `opcode` is one of them.
    fn memo_op(&mut self, opcode: u8) -> Res<bool> {
        match opcode {
            op::BINPUT => {
                let i = self.byte()?.into();
                self.put(i)?;
            }
            op::LONG_BINPUT => {
                let i = u32::from_le_bytes(self.array()?);
                self.put(i)?;
            }
            op::MEMOIZE => {
                let i = u32::try_from(self.memo.len()).map_err(|_| "memo overflow")?;
                self.put(i)?;
            }
            op::BINGET => {
                let i = self.byte()?.into();
                self.get(i)?;
            }
            op::LONG_BINGET => {
                let i = u32::from_le_bytes(self.array()?);
                self.get(i)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Globals (refused names fail here, before anything could call them), calls, BUILD and
    /// persistent ids (tensor storages).
    /// Returns whether `opcode` is one of them.
    fn object_op(&mut self, opcode: u8) -> Res<bool> {
        match opcode {
            op::GLOBAL => {
                let module = self.line()?;
                let name = self.line()?;
                let global = resolve_global(module, name)?;
                self.push(Obj::Global(global));
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                let global = match (&self.objs[module], &self.objs[name]) {
                    (Obj::Str(module), Obj::Str(name)) => resolve_global(module, name)?,
                    _ => return Err("STACK_GLOBAL needs a module and a name".into()),
                };
                self.push(Obj::Global(global));
            }
            op::REDUCE | op::NEWOBJ => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let Obj::Global(global) = self.objs[callable] else {
                    return Err(format!(
                        "{} calls {}, not a global",
                        op::name(opcode),
                        self.objs[callable].type_name()
                    ));
                };
                let obj = self.call(global, args)?;
                self.push(obj);
            }
            op::BUILD => {
                let _state = self.pop()?;
                let target = self.top()?;
                // An OrderedDict's state is its attributes (a state dict's `_metadata` of module versions),
                // which a state dict loader does not need.
                if !matches!(self.objs[target], Obj::Dict(_)) {
                    return Err(format!("BUILD on {} is not supported", self.objs[target].type_name()));
                }
            }
            op::BINPERSID => {
                let pid = self.pop()?;
                let storage = self.persistent_load(pid)?;
                self.push(Obj::Storage(storage));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    // --- Reading the byte stream; every length is checked against what is left.

    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.data.len());
        let end = end.ok_or_else(|| format!("unexpected end of data: {n} bytes needed (truncated?)"))?;
        let data: &'a [u8] = self.data;
        let bytes = &data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Res<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn byte(&mut self) -> Res<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn len32(&mut self) -> Res<usize> {
        // BINSTRING and LONG4 store a signed length: a negative one reads as > 2 GiB and fails `take`.
        let n = u32::from_le_bytes(self.array()?);
        usize::try_from(n).map_err(|_| format!("length {n} does not fit"))
    }

    fn len64(&mut self) -> Res<usize> {
        let n = u64::from_le_bytes(self.array()?);
        usize::try_from(n).map_err(|_| format!("length {n} does not fit"))
    }

    /// A newline-terminated line (GLOBAL's module and name).
    fn line(&mut self) -> Res<&'a str> {
        let data: &'a [u8] = self.data;
        let rest = &data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or("unterminated GLOBAL name (truncated?)")?;
        let line = std::str::from_utf8(&rest[..n]).map_err(|_| "GLOBAL name is not UTF-8")?;
        self.pos += n + 1;
        Ok(line)
    }

    fn push_str(&mut self, n: usize) -> Res<()> {
        let s = std::str::from_utf8(self.take(n)?).map_err(|_| "string is not UTF-8")?.to_string();
        self.push(Obj::Str(s));
        Ok(())
    }

    // --- The stack, marks and memo.

    fn push(&mut self, obj: Obj) {
        self.objs.push(obj);
        self.stack.push(self.objs.len() - 1);
    }

    /// The lowest stack slot above the innermost MARK: CPython cannot pop below it either.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Res<Id> {
        if self.stack.len() <= self.floor() {
            return Err("pickle stack underflow".into());
        }
        self.stack.pop().ok_or_else(|| "pickle stack underflow".into())
    }

    fn top(&self) -> Res<Id> {
        match self.stack.last() {
            Some(&id) if self.stack.len() > self.floor() => Ok(id),
            _ => Err("pickle stack underflow".into()),
        }
    }

    fn pop_mark(&mut self) -> Res<Vec<Id>> {
        let mark = self.marks.pop().ok_or("no MARK to pop to")?;
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn put(&mut self, i: u32) -> Res<()> {
        let top = self.top()?;
        self.memo.insert(i, top);
        Ok(())
    }

    fn get(&mut self, i: u32) -> Res<()> {
        let id = *self.memo.get(&i).ok_or_else(|| format!("memo entry {i} is not defined"))?;
        self.stack.push(id);
        Ok(())
    }

    // --- Objects.

    fn list_mut(&mut self, id: Id) -> Res<&mut Vec<Id>> {
        match &mut self.objs[id] {
            Obj::List(items) => Ok(items),
            other => Err(format!("APPEND to {}, not a list", other.type_name())),
        }
    }

    fn set_item(&mut self, dict: Id, key: Id, value: Id) -> Res<()> {
        let key_str = match &self.objs[key] {
            Obj::Str(s) => Some(s.clone()),
            _ => None,
        };
        let Obj::Dict(d) = &mut self.objs[dict] else {
            return Err(format!("SETITEM on {}, not a dict", self.objs[dict].type_name()));
        };
        match key_str {
            Some(s) => match d.by_str.get(&s) {
                Some(&slot) => d.items[slot] = (key, value),
                None => {
                    d.by_str.insert(s, d.items.len());
                    d.items.push((key, value));
                }
            },
            None => d.items.push((key, value)),
        }
        Ok(())
    }

    fn int(&self, id: Id) -> Res<i64> {
        match self.objs[id] {
            Obj::Int(v) => Ok(v),
            ref other => Err(format!("expected an int, found {}", other.type_name())),
        }
    }

    fn index(&self, id: Id, what: &str) -> Res<usize> {
        let v = self.int(id)?;
        usize::try_from(v).map_err(|_| format!("{what} {v} is negative"))
    }

    fn ints(&self, id: Id) -> Res<Vec<i64>> {
        match &self.objs[id] {
            Obj::Tuple(items) | Obj::List(items) => items.iter().map(|&i| self.int(i)).collect(),
            other => Err(format!("expected a tuple of ints, found {}", other.type_name())),
        }
    }

    /// A str, or ASCII bytes (`torch.serialization._maybe_decode_ascii`).
    fn text(&self, id: Id) -> Res<String> {
        match &self.objs[id] {
            Obj::Str(s) => Ok(s.clone()),
            Obj::Bytes(b) if b.is_ascii() => Ok(String::from_utf8_lossy(b).into_owned()),
            other => Err(format!("expected a str, found {}", other.type_name())),
        }
    }

    fn tuple(&self, id: Id) -> Res<Vec<Id>> {
        match &self.objs[id] {
            Obj::Tuple(items) => Ok(items.clone()),
            other => Err(format!("expected a tuple, found {}", other.type_name())),
        }
    }

    /// REDUCE/NEWOBJ of a whitelisted global.
    fn call(&mut self, global: Global, args: Id) -> Res<Obj> {
        let args = self.tuple(args)?;
        match global {
            Global::OrderedDict if args.is_empty() => Ok(Obj::Dict(Dict::default())),
            Global::OrderedDict => Err("OrderedDict(...) with arguments is not supported".into()),
            // torch/_utils.py: _rebuild_tensor(storage, storage_offset, size, stride).
            Global::RebuildTensor => match args.as_slice() {
                &[storage, offset, size, stride] => self.rebuild_tensor(storage, offset, size, stride),
                _ => Err(format!("_rebuild_tensor with {} arguments", args.len())),
            },
            // torch/_utils.py: _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
            // backward_hooks, metadata=None). Gradients and hooks do not matter to a state dict.
            Global::RebuildTensorV2 => {
                let &[storage, offset, size, stride, _requires_grad, _hooks, ref metadata @ ..] =
                    args.as_slice()
                else {
                    return Err(format!("_rebuild_tensor_v2 with {} arguments", args.len()));
                };
                match metadata {
                    [] => {}
                    [m] if matches!(&self.objs[*m], Obj::None) => {}
                    [m] if matches!(&self.objs[*m], Obj::Dict(d) if d.items.is_empty()) => {}
                    _ => return Err("_rebuild_tensor_v2 with tensor metadata is not supported".into()),
                }
                self.rebuild_tensor(storage, offset, size, stride)
            }
            // torch/_utils.py: _rebuild_parameter(data, requires_grad, backward_hooks): the data is the tensor.
            Global::RebuildParameter => match args.as_slice() {
                [data, _, _] => match &self.objs[*data] {
                    Obj::Tensor(t) => Ok(Obj::Tensor(t.clone())),
                    other => Err(format!("_rebuild_parameter of {}, not a tensor", other.type_name())),
                },
                _ => Err(format!("_rebuild_parameter with {} arguments", args.len())),
            },
            Global::CodecsEncode => {
                let [text, encoding] = args.as_slice() else {
                    return Err(format!("_codecs.encode with {} arguments", args.len()));
                };
                let (text, encoding) = (self.text(*text)?, self.text(*encoding)?);
                let bytes = match encoding.as_str() {
                    "latin1" | "latin-1" => text
                        .chars()
                        .map(|c| u8::try_from(c).map_err(|_| format!("character {c:?} is not latin-1")))
                        .collect::<Res<Vec<u8>>>()?,
                    "utf-8" | "utf8" => text.into_bytes(),
                    other => return Err(format!("_codecs.encode to '{}' is not supported", shown(other))),
                };
                Ok(Obj::Bytes(bytes))
            }
            Global::Storage(kind) => Err(format!("calling the {kind:?} storage class is not supported")),
        }
    }

    /// A tensor viewing `storage`, checked to stay inside it.
    fn rebuild_tensor(&self, storage: Id, offset: Id, size: Id, stride: Id) -> Res<Obj> {
        let Obj::Storage(storage) = &self.objs[storage] else {
            return Err(format!("a tensor of {}, not a storage", self.objs[storage].type_name()));
        };
        let offset = self.index(offset, "storage offset")?;
        let (size, stride) = (self.ints(size)?, self.ints(stride)?);
        check_view(&size, &stride, offset, storage.numel)?;
        Ok(Obj::Tensor(TensorRef { storage: storage.clone(), offset, size, stride }))
    }

    /// torch/serialization.py `persistent_load`: `('storage', storage_type, key, location, numel[, view])`.
    fn persistent_load(&mut self, pid: Id) -> Res<StorageRef> {
        let items = self.tuple(pid)?;
        let Some((&tag, fields)) = items.split_first() else {
            return Err("empty persistent id".into());
        };
        match self.text(tag)?.as_str() {
            "storage" => {}
            "module" => {
                return Err(
                    "the checkpoint pickles a whole nn.Module, not a state dict: save model.state_dict()"
                        .into(),
                )
            }
            other => return Err(format!("unknown persistent id type '{}'", shown(other))),
        }
        let (storage_type, key, numel, view) = match fields {
            [t, key, _location, numel] => (*t, *key, *numel, None),
            [t, key, _location, numel, view] => (*t, *key, *numel, Some(*view)),
            _ => return Err(format!("storage persistent id with {} fields", items.len())),
        };
        let Obj::Global(Global::Storage(kind)) = self.objs[storage_type] else {
            return Err(format!(
                "storage persistent id with {} as its type",
                self.objs[storage_type].type_name()
            ));
        };
        let key = self.text(key)?;
        let decl = StorageDecl { kind, numel: self.index(numel, "storage size")? };
        decl.nbytes()?;
        match self.storages.get(&key) {
            Some(seen) if *seen != decl => {
                return Err(format!("storage '{}' is declared as both {seen:?} and {decl:?}", shown(&key)))
            }
            Some(_) => {}
            None => {
                self.storages.insert(key.clone(), decl);
            }
        }
        // Legacy files could name a slice of a storage: (view_key, offset, size) in elements.
        let (offset, numel) = match view.map(|v| &self.objs[v]) {
            None | Some(Obj::None) => (0, decl.numel),
            Some(Obj::Tuple(v)) if v.len() == 3 => {
                let (offset, size) =
                    (self.index(v[1], "storage view offset")?, self.index(v[2], "storage view size")?);
                if offset.checked_add(size).is_none_or(|end| end > decl.numel) {
                    return Err(format!("storage view {offset}+{size} outside a storage of {}", decl.numel));
                }
                (offset, size)
            }
            Some(other) => return Err(format!("storage view metadata is {}", other.type_name())),
        };
        Ok(StorageRef { key, decl, offset, numel })
    }
}

/// LONG1/LONG4's little-endian two's complement integer.
fn long(bytes: &[u8]) -> Obj {
    if bytes.len() > 8 {
        return Obj::BigInt(bytes.to_vec());
    }
    let fill = if bytes.last().is_some_and(|&b| b & 0x80 != 0) { 0xff } else { 0 };
    let mut full = [fill; 8];
    full[..bytes.len()].copy_from_slice(bytes);
    Obj::Int(i64::from_le_bytes(full))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::pickle::container::LEGACY_MAGIC;

    fn run(bytes: &[u8]) -> Res<Pickle> {
        unpickle(bytes, 0, "test").map(|(p, _)| p)
    }

    #[test]
    fn refuses_unlisted_globals_by_name() {
        let err = run(b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00echo\x85R.").err().unwrap_or_default();
        assert!(err.contains("pickle global 'os.system' is not allowed"), "{err}");
        let err = run(b"\x80\x04\x8c\x05torch\x8c\x07storage\x93.").err().unwrap_or_default();
        assert!(err.contains("'torch.storage' is not allowed"), "{err}");
    }

    #[test]
    fn names_unsupported_opcodes_and_their_offset() {
        let err = run(b"\x80\x02N0i__main__\nX\n.").err().unwrap_or_default();
        assert!(err.contains("INST (0x69)") && err.contains("byte 4"), "{err}");
    }

    #[test]
    fn truncation_and_bad_references_are_errors() {
        for bytes in [
            &b"\x80\x02X\xff\x00\x00\x00ab"[..],
            b"\x80\x02h\x07.",
            b"\x80\x02(t0.",
            b"\x80\x02s.",
            b"\x80\x02K",
        ] {
            assert!(run(bytes).is_err(), "{bytes:?}");
        }
        // A MARK fences the stack: TUPLE1 cannot reach below it.
        assert!(run(b"\x80\x02N(\x85.").is_err());
    }

    #[test]
    fn memo_shares_mutable_objects() {
        // d = {}; memo[0] = d; d['a'] = 1 through the memo; STOP returns the same dict.
        let p = run(b"\x80\x02}q\x000h\x00X\x01\x00\x00\x00aK\x01s.").unwrap_or_else(|e| panic!("{e}"));
        let Obj::Dict(d) = p.root() else { panic!("not a dict") };
        assert_eq!(d.items.len(), 1);
    }

    #[test]
    fn longs_and_views() {
        assert!(matches!(long(&[0xff]), Obj::Int(-1)));
        assert!(matches!(long(&[0x00, 0x80, 0x00]), Obj::Int(0x8000)));
        assert!(matches!(long(&LEGACY_MAGIC), Obj::BigInt(_)));
        assert!(check_view(&[2, 3], &[3, 1], 0, 6).is_ok());
        assert!(check_view(&[2, 3], &[3, 1], 1, 6).is_err());
        assert!(check_view(&[3, 2], &[1, 3], 0, 6).is_ok());
        assert!(check_view(&[0, 5], &[5, 1], 100, 6).is_ok());
        assert!(check_view(&[i64::MAX, 2], &[i64::MAX, 1], 0, 6).is_err());
        assert!(check_view(&[2], &[-1], 1, 6).is_err());
    }
}

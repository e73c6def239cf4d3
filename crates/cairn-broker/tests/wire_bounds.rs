//! Request decoding is bounded by the bytes received.
//!
//! 1. Frames generated at random from each request layout, for every API and version served,
//!    decode with the protocol crate to their last byte: the layouts match what the crate reads.
//! 2. What the decode reserves (counted by this binary's allocator, per thread) stays under what
//!    the check predicted and under `decode_limit` of the frame.
//! 3. Mutated frames (bytes flipped, counts and lengths blown up) never make a decode reserve more
//!    than `decode_limit`, whether they are refused or not.

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;

use bytes::Bytes;
use cairn_broker::wire::layout::{self, Layout, Ty};
use cairn_broker::wire::{check_request, decode_limit, decode_request, WireError};
use cairn_broker::SUPPORTED;
use kafka_protocol::messages::ApiKey;

struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        ALLOCATED.with(|a| a.set(a.get().saturating_add(layout.size())));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        ALLOCATED.with(|a| a.set(a.get().saturating_add(new_size)));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated on this thread while `f` runs (frees are not subtracted: this is the sum of
/// every reservation, an upper bound of the peak).
fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATED.with(|a| a.get());
    let out = f();
    (out, ALLOCATED.with(|a| a.get()) - before)
}

/// Small deterministic generator (xorshift64*), so every failure names a reproducible seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_len(out: &mut Vec<u8>, n: usize, flexible: bool, wide: bool) {
    if flexible {
        put_varint(out, n as u32 + 1);
    } else if wide {
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.extend_from_slice(&(n as i16).to_be_bytes());
    }
}

fn gen_value(out: &mut Vec<u8>, ty: &Ty, version: i16, flexible: bool, rng: &mut Rng) {
    match ty {
        Ty::I8 | Ty::Bool => out.push(rng.below(2) as u8),
        Ty::I16 => out.extend_from_slice(&(rng.below(100) as i16).to_be_bytes()),
        Ty::I32 => out.extend_from_slice(&(rng.below(1000) as i32).to_be_bytes()),
        Ty::I64 => out.extend_from_slice(&(rng.below(1 << 40) as i64).to_be_bytes()),
        Ty::Uuid => (0..16).for_each(|_| out.push(rng.next() as u8)),
        Ty::Str => {
            let n = rng.below(9) as usize;
            put_len(out, n, flexible, false);
            (0..n).for_each(|_| out.push(b'a' + rng.below(26) as u8));
        }
        Ty::Bytes => {
            let n = rng.below(9) as usize;
            put_len(out, n, flexible, true);
            (0..n).for_each(|_| out.push(rng.next() as u8));
        }
        Ty::Array(elem, _) => {
            let n = rng.below(4) as usize;
            put_len(out, n, flexible, true);
            (0..n).for_each(|_| gen_value(out, elem, version, flexible, rng));
        }
        Ty::Structs(l) => {
            let n = rng.below(4) as usize;
            put_len(out, n, flexible, true);
            (0..n).for_each(|_| gen_struct(out, l, version, rng));
        }
        Ty::Struct(l) => gen_struct(out, l, version, rng),
        Ty::NullableStruct(l) => {
            if rng.below(2) == 0 {
                out.push(0xff);
            } else {
                out.push(1);
                gen_struct(out, l, version, rng);
            }
        }
    }
}

fn gen_struct(out: &mut Vec<u8>, l: &Layout, version: i16, rng: &mut Rng) {
    let flexible = version >= l.flexible_from;
    for f in l.fields {
        if version >= f.from && version <= f.to {
            gen_value(out, &f.ty, version, flexible, rng);
        }
    }
    if flexible {
        gen_tags(out, l.tagged, version, rng);
    }
}

/// Sometimes the tags the crate knows for this version, sometimes unknown ones (kept as bytes).
fn gen_tags(out: &mut Vec<u8>, known: &[layout::Tagged], version: i16, rng: &mut Rng) {
    let mut fields: Vec<(u32, Vec<u8>)> = Vec::new();
    for t in known.iter().filter(|t| version >= t.from) {
        if rng.below(2) == 0 {
            let mut v = Vec::new();
            gen_value(&mut v, &t.ty, version, true, rng);
            fields.push((t.tag, v));
        }
    }
    if rng.below(4) == 0 {
        let tag = 100 + rng.below(50) as u32;
        let v = (0..rng.below(5)).map(|_| rng.next() as u8).collect();
        fields.push((tag, v));
    }
    put_varint(out, fields.len() as u32);
    for (tag, v) in fields {
        put_varint(out, tag);
        put_varint(out, v.len() as u32);
        out.extend_from_slice(&v);
    }
}

fn gen_frame(key: ApiKey, version: i16, rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(key as i16).to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&(rng.below(1 << 30) as i32).to_be_bytes());
    let client = b"gen-client";
    out.extend_from_slice(&(client.len() as i16).to_be_bytes());
    out.extend_from_slice(client);
    if key.request_header_version(version) >= 2 {
        gen_tags(&mut out, &[], version, rng);
    }
    gen_struct(
        &mut out,
        layout::request(key).expect("layout"),
        version,
        rng,
    );
    out
}

/// Every served (key, version) the crate decodes.
fn served_versions() -> Vec<(ApiKey, i16)> {
    let mut v = Vec::new();
    for &(key, _, hi) in SUPPORTED {
        let (lo, hi2) = cairn_broker::wire::served_range(key).expect("served");
        assert_eq!(hi, hi2);
        for version in lo..=hi {
            v.push((key, version));
        }
    }
    v
}

#[test]
fn every_served_api_has_a_layout() {
    for &(key, _, _) in SUPPORTED {
        assert!(layout::request(key).is_some(), "{key:?} has no layout");
    }
}

#[test]
fn generated_frames_decode_to_their_last_byte_within_the_predicted_reserve() {
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let mut checked = 0;
    for (key, version) in served_versions() {
        for round in 0..60 {
            let frame = gen_frame(key, version, &mut rng);
            let c = check_request(&frame)
                .unwrap_or_else(|e| panic!("{key:?} v{version} round {round}: refused: {e}"));
            assert_eq!(
                c.consumed,
                frame.len(),
                "{key:?} v{version}: walk stopped early"
            );
            let (decoded, used) = allocated_by(|| decode_request(Bytes::from(frame.clone())));
            let decoded = decoded.unwrap_or_else(|e| {
                panic!("{key:?} v{version} round {round}: crate refused a generated frame: {e:#}\n{frame:02x?}")
            });
            assert_eq!(
                decoded.trailing, 0,
                "{key:?} v{version}: the crate stopped {} bytes early: layout disagrees\n{frame:02x?}",
                decoded.trailing
            );
            // The check's prediction covers the crate's reservations (plus small fixed costs:
            // the frame's own `Bytes`, error boxes).
            assert!(
                used <= c.reserve + 1024,
                "{key:?} v{version}: decode reserved {used} bytes, predicted {}",
                c.reserve
            );
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} frames checked");
}

/// The frame the issue reported: a Metadata v1 request claiming 2^31-1 topics in 26 bytes.
#[test]
fn the_26_byte_metadata_frame_is_refused_before_decoding() {
    let frame: Vec<u8> = [
        &[0x00, 0x03, 0x00, 0x01][..],
        &[0x00, 0x00, 0x00, 0x01],
        &[0x00, 0x04],
        b"fuzz",
        &[0x7f, 0xff, 0xff, 0xff],
        &[0x00, 0x02],
        b"fz",
    ]
    .concat();
    assert_eq!(frame.len() + 4, 26);
    let err = check_request(&frame).unwrap_err();
    assert!(
        matches!(
            err,
            WireError::Count {
                count: 0x7fff_ffff,
                ..
            }
        ),
        "{err}"
    );
    let (res, used) = allocated_by(|| decode_request(Bytes::from(frame.clone())));
    assert!(res.is_err());
    assert!(used < 4096, "refusal allocated {used} bytes");
}

/// A name of two characters takes 3 bytes on the wire, 32 in the crate's `Vec` and a few hundred
/// in the answer: a frame full of them is structurally valid but refused for what it would cost.
#[test]
fn arrays_of_tiny_elements_are_refused_for_their_reserve() {
    let n = 1_000_000usize;
    let mut frame = Vec::new();
    frame.extend_from_slice(&(ApiKey::DescribeGroups as i16).to_be_bytes());
    frame.extend_from_slice(&5i16.to_be_bytes());
    frame.extend_from_slice(&7i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    frame.push(0); // header tags
    put_varint(&mut frame, n as u32 + 1);
    for _ in 0..n {
        frame.extend_from_slice(&[3, b'g', b'1']); // compact string "g1"
    }
    frame.push(0); // include_authorized_operations
    frame.push(0); // tags
    let err = check_request(&frame).unwrap_err();
    assert!(matches!(err, WireError::TooCostly { .. }), "{err}");
}

#[test]
fn a_known_tag_whose_size_disagrees_with_its_value_is_refused() {
    // Fetch v12 with cluster id (tag 0) declared as 5 bytes but holding a 4-byte string: the
    // crate would read 4 and take the fifth for the next field.
    let mut frame = Vec::new();
    frame.extend_from_slice(&(ApiKey::Fetch as i16).to_be_bytes());
    frame.extend_from_slice(&12i16.to_be_bytes());
    frame.extend_from_slice(&1i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    frame.push(0);
    for v in [-1i32, 500, 1, 1 << 20] {
        frame.extend_from_slice(&v.to_be_bytes());
    }
    frame.push(0); // isolation
    frame.extend_from_slice(&0i32.to_be_bytes()); // session id
    frame.extend_from_slice(&(-1i32).to_be_bytes()); // session epoch
    frame.push(1); // no topics
    frame.push(1); // no forgotten topics
    frame.push(1); // empty rack
    frame.extend_from_slice(&[1, 0, 5, 4, b'a', b'b', b'c', 0]);
    let err = check_request(&frame).unwrap_err();
    assert!(matches!(err, WireError::TagSize { tag: 0, .. }), "{err}");
}

/// Big numbers to splice into frames: the values that blow up a naive decoder.
const HOSTILE: &[&[u8]] = &[
    &[0x7f, 0xff, 0xff, 0xff],
    &[0x00, 0x10, 0x00, 0x00],
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0x80, 0x80, 0x80, 0x80, 0x08],
    &[0x7f, 0xff],
    &[0xff, 0xff, 0xff, 0xfe],
];

#[test]
fn mutated_frames_never_reserve_more_than_the_limit() {
    let mut rng = Rng(0x0bad_5eed_0000_0002);
    let mut refused = 0usize;
    let mut total = 0usize;
    for (key, version) in served_versions() {
        for _ in 0..40 {
            let mut frame = gen_frame(key, version, &mut rng);
            // Keep the header's key and version so the mutation reaches the body's walk.
            for _ in 0..=rng.below(3) {
                let at = 8 + rng.below((frame.len() - 8).max(1) as u64) as usize;
                match rng.below(3) {
                    0 => {
                        let last = frame.len() - 1;
                        frame[at.min(last)] = rng.next() as u8;
                    }
                    1 => {
                        let h = HOSTILE[rng.below(HOSTILE.len() as u64) as usize];
                        let at = at.min(frame.len());
                        frame.splice(at..(at + h.len()).min(frame.len()), h.iter().copied());
                    }
                    _ => frame.truncate(at.max(8)),
                }
            }
            let len = frame.len();
            let (res, used) = allocated_by(|| decode_request(Bytes::from(frame)));
            assert!(
                used <= decode_limit(len),
                "{key:?} v{version}: {used} bytes reserved for a {len}-byte frame"
            );
            refused += res.is_err() as usize;
            total += 1;
        }
    }
    // Most mutations break a frame; some must still be refused for the test to mean anything.
    assert!(refused > total / 4, "{refused} of {total} refused");
}

//! The per-command cost of the control channel: splitting lines, parsing commands, encoding and
//! parsing replies, normalising paths and formatting listings. Run with
//! `cargo bench --bench protocol`; compare runs with criterion's saved baselines
//! (`-- --save-baseline before` then `-- --baseline before`).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferry::protocol::listing::{EntryKind, ListEntry, MlstFacts, write_list_line, write_mlsd_line};
use ferry::protocol::reply::parse_reply;
use ferry::protocol::{LineDecoder, Reply, ReplyCode, VirtualPath, command::parse_command};

/// Lines a real session sends most, as they arrive from FileZilla and lftp.
const COMMON_LINES: &[&[u8]] = &[
    b"RETR some/dir/index.html",
    b"STOR uploads/photo 2026.jpg",
    b"EPSV",
    b"PASV",
    b"TYPE I",
    b"MLSD /var/www",
    b"CWD /var/www/site",
    b"USER alice",
    b"NOOP",
    b"REST 1048576",
];

fn command_parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_command");
    for line in COMMON_LINES {
        let name = String::from_utf8_lossy(line).into_owned();
        group.bench_function(name, |b| {
            b.iter(|| black_box(parse_command(black_box(line))))
        });
    }
    group.bench_function("unknown verb", |b| {
        b.iter(|| black_box(parse_command(black_box(b"XYZZ plugh"))))
    });
    group.finish();
}

fn line_splitting(c: &mut Criterion) {
    // A pipelined burst of 100 commands, as a client that does not wait for replies sends them.
    let burst: Vec<u8> = COMMON_LINES
        .iter()
        .cycle()
        .take(100)
        .flat_map(|line| line.iter().copied().chain(*b"\r\n"))
        .collect();
    let mut group = c.benchmark_group("line_decoder");
    group.throughput(Throughput::Elements(100));
    group.bench_function("100 pipelined commands", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&burst[..]),
            |buf| {
                let mut decoder = LineDecoder::new();
                while let Some(line) = decoder.decode(buf) {
                    black_box(line.ok());
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("ABOR after Telnet IP/DM", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&b"\xff\xf4\xff\xf2ABOR\r\n"[..]),
            |buf| black_box(LineDecoder::new().decode(buf)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn replies(c: &mut Criterion) {
    let mut group = c.benchmark_group("reply");
    let single = Reply::new(ReplyCode::CLOSING_DATA, "Transfer complete.");
    let mut out = BytesMut::with_capacity(4096);
    group.bench_function("encode single line", |b| {
        b.iter(|| {
            out.clear();
            black_box(&single).encode(&mut out);
        })
    });
    let feat = Reply::multiline(
        ReplyCode::SYSTEM_STATUS,
        [
            "Extensions supported:",
            " AUTH TLS",
            " EPSV",
            " MDTM",
            " MLST type*;size*;modify*;perm*;unique*;",
            " REST STREAM",
            " SIZE",
            " UTF8",
            "End",
        ],
    );
    group.bench_function("encode FEAT (multi-line)", |b| {
        b.iter(|| {
            out.clear();
            black_box(&feat).encode(&mut out);
        })
    });
    let wire = feat.to_bytes();
    group.bench_function("parse FEAT (multi-line)", |b| {
        b.iter(|| black_box(parse_reply(black_box(&wire))))
    });
    group.bench_function("parse 227 PASV", |b| {
        b.iter(|| {
            black_box(parse_reply(black_box(
                b"227 Entering Passive Mode (127,0,0,1,117,48).\r\n",
            )))
        })
    });
    group.finish();
}

fn paths(c: &mut Criterion) {
    let cwd = VirtualPath::parse("/var/www/site").unwrap();
    let mut group = c.benchmark_group("virtual_path");
    group.bench_function("join relative", |b| {
        b.iter(|| black_box(cwd.join(black_box("assets/css/site.css"))))
    });
    group.bench_function("join with ..", |b| {
        b.iter(|| black_box(cwd.join(black_box("../../../../etc/./passwd"))))
    });
    group.finish();
}

fn listings(c: &mut Criterion) {
    let names: Vec<String> = (0..10_000).map(|i| format!("file-{i:05}.html")).collect();
    let entries: Vec<ListEntry<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, name)| ListEntry {
            name,
            kind: if i % 10 == 0 {
                EntryKind::Dir
            } else {
                EntryKind::File
            },
            size: i as u64 * 37,
            modified: Some(1_790_000_000 + i as i64),
            mode: Some(0o644),
            unique: Some((2049, i as u64)),
        })
        .collect();
    let now = 1_795_000_000;
    let facts = MlstFacts::from_opts(b"type;size;modify;perm;unique;");
    let mut out = Vec::with_capacity(1 << 20);
    let mut group = c.benchmark_group("listing");
    group.throughput(Throughput::Elements(entries.len() as u64));
    group.bench_function("LIST 10,000 entries", |b| {
        b.iter(|| {
            out.clear();
            for entry in &entries {
                write_list_line(&mut out, entry, now);
            }
            black_box(out.len())
        })
    });
    group.bench_function("MLSD 10,000 entries", |b| {
        b.iter(|| {
            out.clear();
            for entry in &entries {
                write_mlsd_line(&mut out, entry, facts, "adfrw");
            }
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    command_parsing,
    line_splitting,
    replies,
    paths,
    listings
);
criterion_main!(benches);

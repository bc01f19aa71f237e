//! The command parser: one control line in, one [`Command`] out.
//!
//! RFC 959 §5.3: a command is a verb of letters (case-insensitive), then optionally one space and
//! an argument, which for file names is the rest of the line verbatim — spaces included. Arguments
//! stay as raw bytes borrowed from the line; the server decodes names as UTF-8 (RFC 2640), so the
//! common path allocates nothing.
//!
//! Errors are values the server turns into replies: an unknown verb is `502`, a bad or missing
//! argument `501`, a parameter the server does not implement `504`.

use std::net::{SocketAddr, SocketAddrV4};

use nom::Parser;
use nom::bytes::complete::{tag, take_while1};
use nom::character::complete::{digit1, oct_digit1};
use nom::combinator::{all_consuming, map_res, opt, rest};
use nom::sequence::preceded;

use super::address::{self, EpsvArgument};
use super::hash::{HashAlgorithm, RangSelection, XHashRange, parse_x_hash_argument};
use super::reply::{Reply, ReplyCode};
use super::time::UtcDateTime;

/// One parsed command line. Byte-slice arguments borrow from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    User(&'a [u8]),
    Pass(&'a [u8]),
    Acct(&'a [u8]),
    Quit,
    Rein,
    /// PWD and XPWD (RFC 775).
    Pwd,
    /// CWD and XCWD.
    Cwd(&'a [u8]),
    /// CDUP and XCUP.
    Cdup,
    /// MKD and XMKD.
    Mkd(&'a [u8]),
    /// RMD and XRMD.
    Rmd(&'a [u8]),
    Dele(&'a [u8]),
    Rnfr(&'a [u8]),
    Rnto(&'a [u8]),
    Retr(&'a [u8]),
    Stor(&'a [u8]),
    /// STOU with an optional suggested name.
    Stou(Option<&'a [u8]>),
    Appe(&'a [u8]),
    Rest(u64),
    Allo,
    Size(&'a [u8]),
    Mdtm(&'a [u8]),
    /// RFC draft-somers-ftp-mfxx: set the modification time.
    Mfmt {
        time: UtcDateTime,
        path: &'a [u8],
    },
    List(Option<&'a [u8]>),
    Nlst(Option<&'a [u8]>),
    Mlsd(Option<&'a [u8]>),
    Mlst(Option<&'a [u8]>),
    Stat(Option<&'a [u8]>),
    Help(Option<&'a [u8]>),
    Noop,
    Syst,
    Feat,
    Opts(Opts<'a>),
    Type(TransferType),
    /// MODE S, the only mode served.
    Mode,
    /// STRU F, the only structure served.
    Stru,
    Pasv,
    Epsv(EpsvArgument),
    Port(SocketAddrV4),
    Eprt(SocketAddr),
    Abor,
    Site(Site<'a>),
    /// RFC 4217 AUTH TLS (and its aliases).
    Auth,
    Pbsz(u64),
    Prot(ProtectionLevel),
    Ccc,
    /// HASH of a file with the session's algorithm (draft-bryan-ftpext-hash-02 §3).
    Hash(&'a [u8]),
    /// XCRC, XMD5, XSHA (SHA-1), XSHA1 and XSHA256: one algorithm each, with optional offsets.
    XHash {
        algorithm: HashAlgorithm,
        path: &'a [u8],
        range: Option<XHashRange>,
    },
    /// RANG start end (draft-bryan-ftp-range-09 §3); `None` is `RANG 1 0`, which resets it.
    Rang(Option<RangSelection>),
    /// HOST (RFC 7151): the virtual host the client means, without a final dot (names compare
    /// case-insensitively), or an address literal in brackets.
    Host(&'a str),
}

/// The representation type (RFC 959 §3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransferType {
    /// TYPE A (non-print): lines end in CRLF on the wire.
    Ascii,
    /// TYPE I and TYPE L 8: bytes as they are.
    #[default]
    Binary,
}

/// RFC 4217 §9 protection levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtectionLevel {
    Clear,
    Safe,
    Confidential,
    Private,
}

/// OPTS arguments (RFC 2389).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opts<'a> {
    /// `OPTS UTF8 ON|OFF` (RFC 2640 clients send it before using UTF-8 names).
    Utf8(bool),
    /// `OPTS MLST fact;fact;` (RFC 3659 §7.9): the facts to send, as given.
    Mlst(&'a [u8]),
    /// `OPTS HASH [algorithm]` (draft-bryan-ftpext-hash-02 §3.2): `None` asks which one is
    /// selected.
    Hash(Option<HashAlgorithm>),
}

/// SITE subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Site<'a> {
    Help,
    Chmod {
        mode: u32,
        path: &'a [u8],
    },
    /// Any other subcommand, by its first word.
    Other(&'a [u8]),
}

/// Why a line is not a command the server can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("empty command line")]
    Empty,
    #[error("not a command")]
    Syntax,
    #[error("unknown command")]
    Unknown,
    #[error("{0} is not implemented")]
    NotImplemented(&'static str),
    #[error("{0} needs an argument: {1}")]
    MissingArgument(&'static str, &'static str),
    #[error("bad argument to {0}: {1}")]
    BadArgument(&'static str, &'static str),
    #[error("{0}: {1}")]
    ParameterNotImplemented(&'static str, &'static str),
    /// EPRT or EPSV named a network protocol other than 1 (IPv4) and 2 (IPv6).
    #[error("{0}: network protocol not supported")]
    NetworkProtocolNotSupported(&'static str),
}

impl CommandError {
    /// The reply this error deserves (RFC 959 §4.2).
    pub fn reply(&self) -> Reply {
        let code = match self {
            Self::Empty | Self::Syntax => ReplyCode::SYNTAX_ERROR,
            Self::Unknown | Self::NotImplemented(_) => ReplyCode::NOT_IMPLEMENTED,
            Self::MissingArgument(..) | Self::BadArgument(..) => ReplyCode::ARGUMENT_SYNTAX_ERROR,
            Self::ParameterNotImplemented(..) => ReplyCode::PARAMETER_NOT_IMPLEMENTED,
            Self::NetworkProtocolNotSupported(_) => ReplyCode::NETWORK_PROTOCOL_NOT_SUPPORTED,
        };
        let text = match self {
            Self::Unknown => {
                "Command not understood; HELP lists the commands this server knows.".into()
            }
            Self::Empty | Self::Syntax => "Syntax error: expected a command such as NOOP.".into(),
            // RFC 2428 §2 and §3 give this text, which clients may parse for the list.
            Self::NetworkProtocolNotSupported(_) => {
                "Network protocol not supported, use (1,2)".into()
            }
            other => format!("{other}."),
        };
        Reply::new(code, text)
    }
}

impl Command<'_> {
    /// The verb as the RFCs spell it, for logs and HELP.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::User(_) => "USER",
            Self::Pass(_) => "PASS",
            Self::Acct(_) => "ACCT",
            Self::Quit => "QUIT",
            Self::Rein => "REIN",
            Self::Pwd => "PWD",
            Self::Cwd(_) => "CWD",
            Self::Cdup => "CDUP",
            Self::Mkd(_) => "MKD",
            Self::Rmd(_) => "RMD",
            Self::Dele(_) => "DELE",
            Self::Rnfr(_) => "RNFR",
            Self::Rnto(_) => "RNTO",
            Self::Retr(_) => "RETR",
            Self::Stor(_) => "STOR",
            Self::Stou(_) => "STOU",
            Self::Appe(_) => "APPE",
            Self::Rest(_) => "REST",
            Self::Allo => "ALLO",
            Self::Size(_) => "SIZE",
            Self::Mdtm(_) => "MDTM",
            Self::Mfmt { .. } => "MFMT",
            Self::List(_) => "LIST",
            Self::Nlst(_) => "NLST",
            Self::Mlsd(_) => "MLSD",
            Self::Mlst(_) => "MLST",
            Self::Stat(_) => "STAT",
            Self::Help(_) => "HELP",
            Self::Noop => "NOOP",
            Self::Syst => "SYST",
            Self::Feat => "FEAT",
            Self::Opts(_) => "OPTS",
            Self::Type(_) => "TYPE",
            Self::Mode => "MODE",
            Self::Stru => "STRU",
            Self::Pasv => "PASV",
            Self::Epsv(_) => "EPSV",
            Self::Port(_) => "PORT",
            Self::Eprt(_) => "EPRT",
            Self::Abor => "ABOR",
            Self::Site(_) => "SITE",
            Self::Auth => "AUTH",
            Self::Pbsz(_) => "PBSZ",
            Self::Prot(_) => "PROT",
            Self::Ccc => "CCC",
            Self::Hash(_) => "HASH",
            Self::XHash { algorithm, .. } => match algorithm {
                HashAlgorithm::Crc32 => "XCRC",
                HashAlgorithm::Md5 => "XMD5",
                HashAlgorithm::Sha1 => "XSHA1",
                HashAlgorithm::Sha256 => "XSHA256",
            },
            Self::Rang(_) => "RANG",
            Self::Host(_) => "HOST",
        }
    }
}

/// Every verb the parser accepts, in HELP order (X-variants from RFC 775 included).
pub const VERBS: &[&str] = &[
    "ABOR", "ACCT", "ALLO", "APPE", "AUTH", "CCC", "CDUP", "CWD", "DELE", "EPRT", "EPSV", "FEAT",
    "HASH", "HELP", "HOST", "LIST", "MDTM", "MFMT", "MKD", "MLSD", "MLST", "MODE", "NLST", "NOOP",
    "OPTS", "PASS", "PASV", "PBSZ", "PORT", "PROT", "PWD", "QUIT", "RANG", "REIN", "REST", "RETR",
    "RMD", "RNFR", "RNTO", "SITE", "SIZE", "STAT", "STOR", "STOU", "STRU", "SYST", "TYPE", "USER",
    "XCRC", "XCUP", "XCWD", "XMD5", "XMKD", "XPWD", "XRMD", "XSHA", "XSHA1", "XSHA256",
];

/// Verbs from the RFCs that are recognised but deliberately not served.
const NOT_IMPLEMENTED: &[&str] = &[
    "SMNT", "LPRT", "LPSV", "ADAT", "MIC", "CONF", "ENC", "LANG", "XRCP", "XRSQ", "XSEM", "XSEN",
    "MAIL", "MLFL", "MRCP", "MRSQ", "MSAM", "MSND", "MSOM",
];

/// The longest verb served (XSHA256).
const MAX_VERB_LEN: usize = 7;

type Input<'a> = &'a [u8];
type ParseResult<O> = Result<O, CommandError>;

/// Parses one command line (without its line ending).
pub fn parse_command(line: &[u8]) -> Result<Command<'_>, CommandError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(CommandError::Empty);
    }
    // A verb is letters, and for XSHA1 and XSHA256 digits after its first letter.
    let verb_and_argument = all_consuming((
        take_while1(|b: u8| b.is_ascii_alphanumeric()),
        opt(preceded(tag(&b" "[..]), rest::<&[u8], ()>)),
    ))
    .parse(line)
    .ok()
    .filter(|(_, (verb, _))| verb[0].is_ascii_alphabetic());
    let (verb, argument) = match verb_and_argument {
        Some((_, parts)) => parts,
        None => {
            let verb_end = line
                .iter()
                .position(|b| !b.is_ascii_alphanumeric())
                .unwrap_or(line.len());
            // "NOOP\t" or "PWD  " are still a verb; other junk is not a command at all.
            if verb_end > 0
                && line[0].is_ascii_alphabetic()
                && line[verb_end..].iter().all(u8::is_ascii_whitespace)
            {
                (&line[..verb_end], None)
            } else {
                return Err(CommandError::Syntax);
            }
        }
    };
    if verb.len() > MAX_VERB_LEN {
        return Err(CommandError::Unknown);
    }
    let mut upper = [0u8; MAX_VERB_LEN];
    for (slot, b) in upper.iter_mut().zip(verb) {
        *slot = b.to_ascii_uppercase();
    }
    let upper = &upper[..verb.len()];
    // A lone trailing space after a verb without arguments is not an argument.
    let argument = argument.filter(|a| !a.is_empty());
    parse_verb(upper, argument)
}

fn parse_verb<'a>(verb: &[u8], arg: Option<Input<'a>>) -> ParseResult<Command<'a>> {
    use Command as C;
    let command = match verb {
        b"USER" => C::User(required("USER", "the user name", arg)?),
        b"PASS" => C::Pass(arg.unwrap_or_default()),
        b"ACCT" => C::Acct(required("ACCT", "the account", arg)?),
        b"QUIT" => C::Quit,
        b"REIN" => C::Rein,
        b"PWD" | b"XPWD" => C::Pwd,
        b"CWD" | b"XCWD" => C::Cwd(required("CWD", "the directory", arg)?),
        b"CDUP" | b"XCUP" => C::Cdup,
        b"MKD" | b"XMKD" => C::Mkd(required("MKD", "the directory", arg)?),
        b"RMD" | b"XRMD" => C::Rmd(required("RMD", "the directory", arg)?),
        b"DELE" => C::Dele(required("DELE", "the file", arg)?),
        b"RNFR" => C::Rnfr(required("RNFR", "the file to rename", arg)?),
        b"RNTO" => C::Rnto(required("RNTO", "the new name", arg)?),
        b"RETR" => C::Retr(required("RETR", "the file", arg)?),
        b"STOR" => C::Stor(required("STOR", "the file", arg)?),
        b"STOU" => C::Stou(arg),
        b"APPE" => C::Appe(required("APPE", "the file", arg)?),
        b"REST" => C::Rest(decimal("REST", "the byte offset", arg)?),
        b"ALLO" => {
            // ALLO n [R m]: accepted and ignored (RFC 959 §4.1.3), but it must be well formed.
            let arg = required("ALLO", "the size in bytes", arg)?;
            let well_formed = all_consuming((
                digit1::<_, nom::error::Error<&[u8]>>,
                opt((tag(&b" R "[..]), digit1)),
            ))
            .parse(arg)
            .is_ok();
            if !well_formed {
                return Err(CommandError::BadArgument(
                    "ALLO",
                    "expected a size in bytes",
                ));
            }
            C::Allo
        }
        b"SIZE" => C::Size(required("SIZE", "the file", arg)?),
        b"MDTM" => C::Mdtm(required("MDTM", "the file", arg)?),
        b"MFMT" => parse_mfmt(arg)?,
        b"LIST" => C::List(listing_argument(arg)),
        b"NLST" => C::Nlst(listing_argument(arg)),
        b"MLSD" => C::Mlsd(arg),
        b"MLST" => C::Mlst(arg),
        b"STAT" => C::Stat(listing_argument(arg)),
        b"HELP" => C::Help(arg),
        b"NOOP" => C::Noop,
        b"SYST" => C::Syst,
        b"FEAT" => C::Feat,
        b"OPTS" => C::Opts(parse_opts(required(
            "OPTS",
            "an option such as UTF8 ON",
            arg,
        )?)?),
        b"TYPE" => C::Type(parse_type(required("TYPE", "A or I", arg)?)?),
        b"MODE" => match required("MODE", "S", arg)?.trim_ascii() {
            b"S" | b"s" => C::Mode,
            b"B" | b"b" | b"C" | b"c" => {
                return Err(CommandError::ParameterNotImplemented(
                    "MODE",
                    "only stream mode (MODE S) is served",
                ));
            }
            _ => return Err(CommandError::BadArgument("MODE", "expected S, B or C")),
        },
        b"STRU" => match required("STRU", "F", arg)?.trim_ascii() {
            b"F" | b"f" => C::Stru,
            b"R" | b"r" | b"P" | b"p" => {
                return Err(CommandError::ParameterNotImplemented(
                    "STRU",
                    "only file structure (STRU F) is served",
                ));
            }
            _ => return Err(CommandError::BadArgument("STRU", "expected F, R or P")),
        },
        b"PASV" => C::Pasv,
        b"EPSV" => C::Epsv(address::parse_epsv_argument(arg).map_err(|e| match e {
            address::AddressError::UnsupportedProtocol => {
                CommandError::NetworkProtocolNotSupported("EPSV")
            }
            _ => CommandError::BadArgument("EPSV", "expected 1, 2 or ALL"),
        })?),
        b"PORT" => C::Port(
            address::parse_port_argument(required("PORT", "h1,h2,h3,h4,p1,p2", arg)?)
                .map_err(|_| CommandError::BadArgument("PORT", "expected h1,h2,h3,h4,p1,p2"))?,
        ),
        b"EPRT" => C::Eprt(
            address::parse_eprt_argument(required("EPRT", "|1|address|port|", arg)?).map_err(
                |e| match e {
                    address::AddressError::UnsupportedProtocol => {
                        CommandError::NetworkProtocolNotSupported("EPRT")
                    }
                    _ => CommandError::BadArgument("EPRT", "expected |1|address|port|"),
                },
            )?,
        ),
        b"ABOR" => C::Abor,
        b"SITE" => C::Site(parse_site(required(
            "SITE",
            "a subcommand; SITE HELP lists them",
            arg,
        )?)?),
        b"AUTH" => {
            let mechanism = required("AUTH", "TLS", arg)?.trim_ascii();
            let known = [&b"TLS"[..], b"TLS-C", b"SSL", b"TLS-P"];
            if known.iter().any(|m| mechanism.eq_ignore_ascii_case(m)) {
                C::Auth
            } else {
                return Err(CommandError::ParameterNotImplemented(
                    "AUTH",
                    "only AUTH TLS is supported",
                ));
            }
        }
        b"PBSZ" => C::Pbsz(decimal("PBSZ", "the buffer size, 0", arg)?),
        b"PROT" => C::Prot(match required("PROT", "C or P", arg)?.trim_ascii() {
            b"C" | b"c" => ProtectionLevel::Clear,
            b"S" | b"s" => ProtectionLevel::Safe,
            b"E" | b"e" => ProtectionLevel::Confidential,
            b"P" | b"p" => ProtectionLevel::Private,
            _ => return Err(CommandError::BadArgument("PROT", "expected C, S, E or P")),
        }),
        b"CCC" => C::Ccc,
        b"HASH" => C::Hash(required("HASH", "the file", arg)?),
        b"XCRC" => parse_x_hash(HashAlgorithm::Crc32, "XCRC", arg)?,
        b"XMD5" => parse_x_hash(HashAlgorithm::Md5, "XMD5", arg)?,
        b"XSHA" | b"XSHA1" => parse_x_hash(HashAlgorithm::Sha1, "XSHA1", arg)?,
        b"XSHA256" => parse_x_hash(HashAlgorithm::Sha256, "XSHA256", arg)?,
        b"RANG" => C::Rang(parse_rang(required("RANG", "start and end bytes", arg)?)?),
        b"HOST" => C::Host(host_name(required("HOST", "the host name", arg)?)?),
        other => {
            return Err(
                match NOT_IMPLEMENTED.iter().find(|v| v.as_bytes() == other) {
                    Some(verb) => CommandError::NotImplemented(verb),
                    None => CommandError::Unknown,
                },
            );
        }
    };
    Ok(command)
}

fn required<'a>(
    verb: &'static str,
    what: &'static str,
    arg: Option<Input<'a>>,
) -> ParseResult<Input<'a>> {
    arg.ok_or(CommandError::MissingArgument(verb, what))
}

fn decimal<'a>(verb: &'static str, what: &'static str, arg: Option<Input<'a>>) -> ParseResult<u64> {
    let arg = required(verb, what, arg)?.trim_ascii();
    all_consuming(map_res(
        digit1::<_, nom::error::Error<&[u8]>>,
        |digits: &[u8]| {
            // digit1 guarantees ASCII digits, so only overflow can fail here.
            std::str::from_utf8(digits)
                .map_err(|_| ())?
                .parse::<u64>()
                .map_err(|_| ())
        },
    ))
    .parse(arg)
    .map(|(_, n)| n)
    .map_err(|_| CommandError::BadArgument(verb, what))
}

/// LIST, NLST and STAT take `ls`-style flags (`-a`, `-la`) that many clients send; they are
/// accepted and ignored. What is left is the path, if any.
fn listing_argument(arg: Option<Input<'_>>) -> Option<Input<'_>> {
    let mut rest = arg?;
    while rest.first() == Some(&b'-') {
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        if !rest[1..end].iter().all(u8::is_ascii_alphanumeric) {
            break;
        }
        rest = rest.get(end + 1..).unwrap_or_default();
    }
    (!rest.is_empty()).then_some(rest)
}

fn parse_mfmt(arg: Option<Input<'_>>) -> ParseResult<Command<'_>> {
    let arg = required("MFMT", "YYYYMMDDHHMMSS and the path", arg)?;
    let (time, path) = match arg.iter().position(|&b| b == b' ') {
        Some(space) => (&arg[..space], &arg[space + 1..]),
        None => {
            return Err(CommandError::BadArgument(
                "MFMT",
                "expected YYYYMMDDHHMMSS path",
            ));
        }
    };
    let time = UtcDateTime::parse_mdtm(time).ok_or(CommandError::BadArgument(
        "MFMT",
        "expected a UTC time as YYYYMMDDHHMMSS",
    ))?;
    if path.is_empty() {
        return Err(CommandError::MissingArgument("MFMT", "the path"));
    }
    Ok(Command::Mfmt { time, path })
}

fn parse_type(arg: Input<'_>) -> ParseResult<TransferType> {
    // At most three words matter; upper-cased into fixed slots, so TYPE never allocates.
    let mut slots = [([0u8; 2], 0usize); 3];
    let mut count = 0;
    for word in arg.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        if count == slots.len() || word.len() > 2 {
            return Err(CommandError::BadArgument("TYPE", "expected A or I"));
        }
        let (bytes, len) = &mut slots[count];
        bytes[..word.len()].copy_from_slice(word);
        bytes.make_ascii_uppercase();
        *len = word.len();
        count += 1;
    }
    let words: [&[u8]; 3] = [0, 1, 2].map(|i| &slots[i].0[..slots[i].1]);
    match &words[..count] {
        [b"A"] | [b"A", b"N"] => Ok(TransferType::Ascii),
        [b"I"] | [b"L", b"8"] | [b"L8"] => Ok(TransferType::Binary),
        [b"A", b"T" | b"C"] | [b"E", ..] | [b"L", _] => Err(CommandError::ParameterNotImplemented(
            "TYPE",
            "only TYPE A (non-print), TYPE I and TYPE L 8 are served",
        )),
        _ => Err(CommandError::BadArgument("TYPE", "expected A or I")),
    }
}

fn parse_opts(arg: Input<'_>) -> ParseResult<Opts<'_>> {
    let (name, value) = match arg.iter().position(|&b| b == b' ') {
        Some(space) => (&arg[..space], arg[space + 1..].trim_ascii()),
        None => (arg, &b""[..]),
    };
    if name.eq_ignore_ascii_case(b"UTF8") || name.eq_ignore_ascii_case(b"UTF-8") {
        return match value {
            b"" => Ok(Opts::Utf8(true)),
            v if v.eq_ignore_ascii_case(b"ON") => Ok(Opts::Utf8(true)),
            v if v.eq_ignore_ascii_case(b"OFF") => Ok(Opts::Utf8(false)),
            _ => Err(CommandError::BadArgument(
                "OPTS",
                "expected UTF8 ON or UTF8 OFF",
            )),
        };
    }
    if name.eq_ignore_ascii_case(b"MLST") {
        return Ok(Opts::Mlst(value));
    }
    if name.eq_ignore_ascii_case(b"HASH") {
        if value.is_empty() {
            return Ok(Opts::Hash(None));
        }
        // draft-bryan-ftpext-hash-02 §3.2: an unknown algorithm is a 501, the selection unchanged.
        return HashAlgorithm::from_name(value)
            .map(|algorithm| Opts::Hash(Some(algorithm)))
            .ok_or(CommandError::BadArgument(
                "OPTS HASH",
                "unknown algorithm, current selection not changed; FEAT lists SHA-256, SHA-1, MD5 and CRC32",
            ));
    }
    Err(CommandError::BadArgument(
        "OPTS",
        "unknown option; UTF8, MLST and HASH are supported",
    ))
}

fn parse_x_hash<'a>(
    algorithm: HashAlgorithm,
    verb: &'static str,
    arg: Option<Input<'a>>,
) -> ParseResult<Command<'a>> {
    let (path, range) = parse_x_hash_argument(required(verb, "the file", arg)?).map_err(|_| {
        CommandError::BadArgument(verb, "the end offset comes before the start offset")
    })?;
    if path.is_empty() {
        return Err(CommandError::MissingArgument(verb, "the file"));
    }
    Ok(Command::XHash {
        algorithm,
        path,
        range,
    })
}

/// `RANG start end`; `RANG 1 0` resets, any other end before its start is a 501 (§3).
fn parse_rang(arg: Input<'_>) -> ParseResult<Option<RangSelection>> {
    const EXPECTED: &str = "expected RANG start end, as in RANG 0 49, or RANG 1 0 to reset";
    let mut words = arg.trim_ascii().split(|&b| b == b' ');
    let mut number = || decimal("RANG", EXPECTED, words.next());
    let (start, end) = (number()?, number()?);
    if words.next().is_some() {
        return Err(CommandError::BadArgument("RANG", EXPECTED));
    }
    match (start, end) {
        (1, 0) => Ok(None),
        (start, end) if start > end => Err(CommandError::BadArgument(
            "RANG",
            "the end byte comes before the start byte",
        )),
        (start, end) => Ok(Some(RangSelection { start, end })),
    }
}

/// RFC 7151 §3: a domain name (RFC 1123 letters, digits and hyphens, labels of at most 63
/// characters, 253 in all, an optional final dot, which is dropped) or an address literal in
/// brackets. Also checks the host names of the configuration.
pub fn host_name(arg: &[u8]) -> Result<&str, CommandError> {
    const EXPECTED: &str = "expected a host name such as ftp.example.com, or [192.0.2.1]";
    let text = std::str::from_utf8(arg.trim_ascii())
        .map_err(|_| CommandError::BadArgument("HOST", EXPECTED))?;
    if let Some(literal) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return match literal.parse::<std::net::IpAddr>() {
            Ok(_) => Ok(text),
            Err(_) => Err(CommandError::BadArgument("HOST", EXPECTED)),
        };
    }
    let name = text.strip_suffix('.').unwrap_or(text);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(CommandError::BadArgument("HOST", EXPECTED));
    }
    Ok(name)
}

fn parse_site(arg: Input<'_>) -> ParseResult<Site<'_>> {
    let (sub, tail) = match arg.iter().position(|&b| b == b' ') {
        Some(space) => (&arg[..space], &arg[space + 1..]),
        None => (arg, &b""[..]),
    };
    if sub.eq_ignore_ascii_case(b"HELP") {
        return Ok(Site::Help);
    }
    if sub.eq_ignore_ascii_case(b"CHMOD") {
        let parsed = (
            map_res(oct_digit1::<_, nom::error::Error<&[u8]>>, |d: &[u8]| {
                let text = std::str::from_utf8(d).map_err(|_| ())?;
                match u32::from_str_radix(text, 8) {
                    Ok(mode) if mode <= 0o7777 => Ok(mode),
                    _ => Err(()),
                }
            }),
            preceded(tag(&b" "[..]), rest),
        )
            .parse(tail);
        return match parsed {
            Ok((_, (mode, path))) if !path.is_empty() => Ok(Site::Chmod { mode, path }),
            _ => Err(CommandError::BadArgument(
                "SITE CHMOD",
                "expected an octal mode and a path, as in SITE CHMOD 644 file",
            )),
        };
    }
    Ok(Site::Other(sub))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(line: &str) -> Result<Command<'_>, CommandError> {
        parse_command(line.as_bytes())
    }

    #[test]
    fn common_commands_parse_without_allocating() {
        let lines: [&[u8]; 10] = [
            b"RETR some/dir/index.html",
            b"STOR uploads/photo 2026.jpg",
            b"EPSV",
            b"PASV",
            b"TYPE I",
            b"MLSD /var/www",
            b"CWD site",
            b"USER alice",
            b"REST 1048576",
            b"XYZZ unknown verbs too",
        ];
        for line in lines {
            assert_no_alloc::reset_violation_count();
            let parsed = assert_no_alloc::assert_no_alloc(|| parse_command(line));
            assert_eq!(
                assert_no_alloc::violation_count(),
                0,
                "parsing {:?} allocated",
                String::from_utf8_lossy(line)
            );
            assert_eq!(parsed.is_ok(), !line.starts_with(b"XYZZ"));
        }
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(parse("user alice"), Ok(Command::User(b"alice")));
        assert_eq!(parse("NoOp"), Ok(Command::Noop));
        assert_eq!(parse("xpwd"), Ok(Command::Pwd));
    }

    #[test]
    fn path_arguments_keep_spaces_and_raw_bytes() {
        assert_eq!(
            parse("STOR  two  spaces .txt"),
            Ok(Command::Stor(b" two  spaces .txt"))
        );
        assert_eq!(
            parse_command(b"RETR caf\xc3\xa9"),
            Ok(Command::Retr("café".as_bytes()))
        );
        assert_eq!(
            parse_command(b"RETR \xff\xfe"),
            Ok(Command::Retr(b"\xff\xfe"))
        );
    }

    #[test]
    fn unknown_and_unimplemented_verbs_are_502() {
        assert_eq!(parse("FROB x"), Err(CommandError::Unknown));
        assert_eq!(parse("CLIENTNAME x"), Err(CommandError::Unknown));
        assert_eq!(parse("SMNT /x"), Err(CommandError::NotImplemented("SMNT")));
        assert_eq!(
            CommandError::Unknown.reply().code,
            ReplyCode::NOT_IMPLEMENTED
        );
    }

    #[test]
    fn junk_is_a_syntax_error() {
        assert_eq!(parse(""), Err(CommandError::Empty));
        assert_eq!(parse("   "), Err(CommandError::Empty));
        assert_eq!(parse("12 x"), Err(CommandError::Syntax));
        assert_eq!(parse("NO-OP"), Err(CommandError::Syntax));
        assert_eq!(CommandError::Syntax.reply().code, ReplyCode::SYNTAX_ERROR);
    }

    #[test]
    fn missing_and_bad_arguments_are_501() {
        assert_eq!(
            parse("RETR"),
            Err(CommandError::MissingArgument("RETR", "the file"))
        );
        assert!(matches!(
            parse("REST abc"),
            Err(CommandError::BadArgument("REST", _))
        ));
        assert!(matches!(
            parse("REST 99999999999999999999999"),
            Err(CommandError::BadArgument("REST", _))
        ));
        assert!(matches!(
            parse("PORT 1,2,3"),
            Err(CommandError::BadArgument("PORT", _))
        ));
        assert_eq!(
            parse("RETR").unwrap_err().reply().code,
            ReplyCode::ARGUMENT_SYNTAX_ERROR
        );
    }

    #[test]
    fn unknown_network_protocols_are_522() {
        for line in ["EPRT |3|10.0.0.1|2000|", "EPSV 3"] {
            let error = parse(line).unwrap_err();
            assert!(
                matches!(error, CommandError::NetworkProtocolNotSupported(_)),
                "{line}"
            );
            assert_eq!(
                error.reply().code,
                ReplyCode::NETWORK_PROTOCOL_NOT_SUPPORTED
            );
        }
    }

    #[test]
    fn trailing_whitespace_after_bare_verbs_is_tolerated() {
        assert_eq!(parse("PASV "), Ok(Command::Pasv));
        assert_eq!(parse("FEAT\t"), Ok(Command::Feat));
    }

    #[test]
    fn type_mode_and_structure() {
        assert_eq!(parse("TYPE A"), Ok(Command::Type(TransferType::Ascii)));
        assert_eq!(parse("TYPE a n"), Ok(Command::Type(TransferType::Ascii)));
        assert_eq!(parse("TYPE I"), Ok(Command::Type(TransferType::Binary)));
        assert_eq!(parse("TYPE L 8"), Ok(Command::Type(TransferType::Binary)));
        assert!(matches!(
            parse("TYPE E"),
            Err(CommandError::ParameterNotImplemented("TYPE", _))
        ));
        assert!(matches!(
            parse("TYPE Q"),
            Err(CommandError::BadArgument("TYPE", _))
        ));
        assert_eq!(parse("MODE S"), Ok(Command::Mode));
        assert!(matches!(
            parse("MODE B"),
            Err(CommandError::ParameterNotImplemented(..))
        ));
        assert_eq!(parse("STRU F"), Ok(Command::Stru));
    }

    #[test]
    fn rest_and_allo() {
        assert_eq!(parse("REST 5000000000"), Ok(Command::Rest(5_000_000_000)));
        assert_eq!(parse("ALLO 1024"), Ok(Command::Allo));
        assert_eq!(parse("ALLO 1024 R 128"), Ok(Command::Allo));
        assert!(matches!(
            parse("ALLO x"),
            Err(CommandError::BadArgument("ALLO", _))
        ));
    }

    #[test]
    fn listing_flags_are_dropped() {
        assert_eq!(parse("LIST"), Ok(Command::List(None)));
        assert_eq!(parse("LIST -la"), Ok(Command::List(None)));
        assert_eq!(parse("LIST -a -l dir"), Ok(Command::List(Some(b"dir"))));
        assert_eq!(parse("NLST sub dir"), Ok(Command::Nlst(Some(b"sub dir"))));
        assert_eq!(
            parse("LIST -weird-name"),
            Ok(Command::List(Some(b"-weird-name")))
        );
    }

    #[test]
    fn mfmt() {
        let Ok(Command::Mfmt { time, path }) = parse("MFMT 20261123085513 a b.txt") else {
            panic!("MFMT did not parse");
        };
        assert_eq!(time.to_mdtm(), "20261123085513");
        assert_eq!(path, b"a b.txt");
        assert!(matches!(
            parse("MFMT 2026 x"),
            Err(CommandError::BadArgument("MFMT", _))
        ));
    }

    #[test]
    fn opts_and_site() {
        assert_eq!(parse("OPTS UTF8 ON"), Ok(Command::Opts(Opts::Utf8(true))));
        assert_eq!(
            parse("opts utf-8 off"),
            Ok(Command::Opts(Opts::Utf8(false)))
        );
        assert_eq!(
            parse("OPTS MLST type;size;"),
            Ok(Command::Opts(Opts::Mlst(b"type;size;")))
        );
        assert_eq!(parse("SITE help"), Ok(Command::Site(Site::Help)));
        assert_eq!(
            parse("SITE CHMOD 0644 my file"),
            Ok(Command::Site(Site::Chmod {
                mode: 0o644,
                path: b"my file"
            }))
        );
        assert!(matches!(
            parse("SITE CHMOD 999 f"),
            Err(CommandError::BadArgument(..))
        ));
        assert_eq!(
            parse("SITE UTIME x"),
            Ok(Command::Site(Site::Other(b"UTIME")))
        );
    }

    #[test]
    fn data_connection_commands() {
        assert_eq!(
            parse("PORT 127,0,0,1,200,10"),
            Ok(Command::Port("127.0.0.1:51210".parse().unwrap()))
        );
        assert_eq!(
            parse("EPRT |2|::1|5000|"),
            Ok(Command::Eprt("[::1]:5000".parse().unwrap()))
        );
        assert_eq!(parse("EPSV ALL"), Ok(Command::Epsv(EpsvArgument::All)));
        assert_eq!(
            parse("EPSV 9"),
            Err(CommandError::NetworkProtocolNotSupported("EPSV"))
        );
        assert!(matches!(
            parse("EPSV x"),
            Err(CommandError::BadArgument("EPSV", _))
        ));
    }

    #[test]
    fn tls_commands() {
        assert_eq!(parse("AUTH TLS"), Ok(Command::Auth));
        assert_eq!(parse("auth ssl"), Ok(Command::Auth));
        assert!(matches!(
            parse("AUTH KERBEROS_V4"),
            Err(CommandError::ParameterNotImplemented("AUTH", _))
        ));
        assert_eq!(parse("PBSZ 0"), Ok(Command::Pbsz(0)));
        assert_eq!(parse("PROT P"), Ok(Command::Prot(ProtectionLevel::Private)));
        assert_eq!(parse("CCC"), Ok(Command::Ccc));
    }

    #[test]
    fn every_listed_verb_parses_with_a_plausible_argument() {
        for verb in VERBS {
            let line = match *verb {
                "PORT" => "PORT 127,0,0,1,4,1".to_string(),
                "EPRT" => "EPRT |1|127.0.0.1|1025|".to_string(),
                "REST" | "ALLO" | "PBSZ" => format!("{verb} 0"),
                "TYPE" => "TYPE I".to_string(),
                "MODE" => "MODE S".to_string(),
                "STRU" => "STRU F".to_string(),
                "PROT" => "PROT P".to_string(),
                "AUTH" => "AUTH TLS".to_string(),
                "OPTS" => "OPTS UTF8 ON".to_string(),
                "MFMT" => "MFMT 20200101000000 f".to_string(),
                "EPSV" => "EPSV".to_string(),
                "RANG" => "RANG 0 1".to_string(),
                v => format!("{v} x"),
            };
            let command = parse_command(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
            let canonical = match *verb {
                "XCUP" => "CDUP",
                "XCWD" => "CWD",
                "XMKD" => "MKD",
                "XPWD" => "PWD",
                "XRMD" => "RMD",
                "XSHA" => "XSHA1",
                v => v,
            };
            assert_eq!(command.verb(), canonical);
        }
    }

    #[test]
    fn hash_commands() {
        assert_eq!(parse("HASH my file.iso"), Ok(Command::Hash(b"my file.iso")));
        assert_eq!(
            parse("xsha256 a.bin 0 10"),
            Ok(Command::XHash {
                algorithm: HashAlgorithm::Sha256,
                path: b"a.bin",
                range: Some(XHashRange { start: 0, end: 10 }),
            })
        );
        assert_eq!(
            parse("XSHA a.bin"),
            Ok(Command::XHash {
                algorithm: HashAlgorithm::Sha1,
                path: b"a.bin",
                range: None,
            })
        );
        assert!(matches!(
            parse("XCRC f 10 2"),
            Err(CommandError::BadArgument("XCRC", _))
        ));
        assert_eq!(
            parse("XMD5"),
            Err(CommandError::MissingArgument("XMD5", "the file"))
        );
        // Digits inside a verb are for these commands only; a verb still starts with a letter.
        assert_eq!(parse("XSHA512 f"), Err(CommandError::Unknown));
        assert_eq!(parse("1HASH f"), Err(CommandError::Syntax));
        assert_eq!(parse("OPTS HASH"), Ok(Command::Opts(Opts::Hash(None))));
        assert_eq!(
            parse("opts hash md5"),
            Ok(Command::Opts(Opts::Hash(Some(HashAlgorithm::Md5))))
        );
        let unknown = parse("OPTS HASH CRC-37").unwrap_err();
        assert_eq!(unknown.reply().code, ReplyCode::ARGUMENT_SYNTAX_ERROR);
        assert!(unknown.reply().text.contains("selection not changed"));
    }

    #[test]
    fn rang_selects_inclusive_ranges_and_1_0_resets() {
        assert_eq!(
            parse("RANG 0 49"),
            Ok(Command::Rang(Some(RangSelection { start: 0, end: 49 })))
        );
        assert_eq!(parse("RANG 1 0"), Ok(Command::Rang(None)));
        assert_eq!(
            parse("RANG 5 5"),
            Ok(Command::Rang(Some(RangSelection { start: 5, end: 5 })))
        );
        for bad in ["RANG 9 3", "RANG 1", "RANG a b", "RANG 1 2 3", "RANG"] {
            assert!(parse(bad).is_err(), "{bad}");
            assert_eq!(
                parse(bad).unwrap_err().reply().code,
                ReplyCode::ARGUMENT_SYNTAX_ERROR,
                "{bad}"
            );
        }
    }

    #[test]
    fn host_takes_domain_names_and_address_literals() {
        assert_eq!(
            parse("HOST ftp.example.com"),
            Ok(Command::Host("ftp.example.com"))
        );
        assert_eq!(parse("HOST Example.COM."), Ok(Command::Host("Example.COM")));
        assert_eq!(parse("HOST [192.0.2.1]"), Ok(Command::Host("[192.0.2.1]")));
        assert_eq!(
            parse("HOST [2001:db8::1]"),
            Ok(Command::Host("[2001:db8::1]"))
        );
        for bad in [
            "HOST",
            "HOST -bad.example",
            "HOST a..b",
            "HOST exa mple.com",
            "HOST [not-an-ip]",
            "HOST ../etc",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let long = format!("HOST {}.com", "a".repeat(64));
        assert!(parse(&long).is_err());
    }

    proptest! {
        #[test]
        fn parser_never_panics(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_command(&line);
        }

        #[test]
        fn path_argument_is_returned_verbatim(name in "[^\r\n]{1,50}") {
            let line = format!("DELE {name}");
            prop_assert_eq!(parse_command(line.as_bytes()), Ok(Command::Dele(name.as_bytes())));
        }
    }
}

//! The FTP protocol as pure functions: bytes in, values out.
//!
//! Nothing here touches a socket, a file or the clock, and nothing here imports from the rest of the
//! crate, so every part can be unit-tested, property-tested and fuzzed on its own. The server and the
//! client both build on it:
//!
//! - [`line`]: control-channel framing (Telnet IAC stripping, CRLF, the 8 KiB line limit);
//! - [`command`]: the command parser (nom), one [`Command`] value per line;
//! - [`reply`]: reply codes, the reply encoder and the multi-line reply parser (RFC 959 §4.2);
//! - [`address`]: PORT/EPRT/PASV/EPSV argument and reply codecs (RFC 959, RFC 2428);
//! - [`path`]: virtual path normalisation that never climbs above `/`, and `257` quoting;
//! - [`listing`]: LIST, NLST and MLSD/MLST line formatting (RFC 3659);
//! - [`hash`]: HASH, RANG and the X hash commands' algorithms, ranges and replies
//!   (draft-bryan-ftpext-hash-02, draft-bryan-ftp-range-09);
//! - [`proxy`]: the PROXY protocol v1/v2 header a TCP load balancer sends ahead of a connection;
//! - [`time`]: the UTC timestamps of MDTM, MFMT and MLSD `modify` facts.

pub mod address;
pub mod command;
pub mod hash;
pub mod line;
pub mod listing;
pub mod path;
pub mod proxy;
pub mod reply;
pub mod time;

pub use command::{Command, CommandError};
pub use line::{LineDecoder, LineError, MAX_LINE_LEN};
pub use path::VirtualPath;
pub use reply::{Reply, ReplyCode};

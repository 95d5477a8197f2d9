//! `nats://`: batches published to a NATS JetStream stream (docs/fleet.md).
//!
//! One message per batch, on subject `{subject}.{host token}`:
//! - the payload is newline-delimited JSON: one line per event
//!   ([`crate::format::event_json`]), or one `{"gap":{…}}` line for a gap
//!   record ([`crate::format::gap_json`]);
//! - headers: `Nats-Msg-Id` (the batch id: JetStream drops a second copy
//!   within the stream's duplicate window), `Netev-Host` (the host exactly),
//!   `Netev-Events` (events in the batch), `Netev-Gap` (events a gap record
//!   says were lost; only on gap records), `Netev-Format` (`netev` or
//!   `ocsf`).
//!
//! `deliver` returns once the stream's publish ack arrived (an ack saying
//! "duplicate" included: the stream already has the batch). Connecting,
//! the stream check and the ack each have a bounded timeout, so a server
//! that is away makes `deliver` fail (and the exporter spool) rather than
//! hang.
//!
//! The client runs on a current-thread tokio runtime that this output
//! owns and drives only inside `deliver`: the exporter thread stays a plain
//! thread. Between batches the connection is idle; a connection the server
//! dropped meanwhile is re-established by async-nats at the next batch.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{ConnectOptions, HeaderMap, ServerAddr};
use bytes::Bytes;

use crate::format::{event_json, gap_json};
use crate::{Batch, BatchMeta, Body, Destination, Error, ExportTarget, Format, Output, Result};

/// The longest a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest a publish waits for the stream's ack (and a stream lookup
/// for its answer).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// The duplicate window of a stream this output creates: a batch id seen
/// again within it is not stored twice. A spool drained after a longer
/// outage may resend a batch the stream stored but never acked; netev-sql's
/// table of committed batch ids catches those.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Header names, as netev-sql reads them back.
pub mod headers {
    /// The publishing host, exactly (the subject holds a sanitized token).
    pub const HOST: &str = "Netev-Host";
    /// Events in the batch.
    pub const EVENTS: &str = "Netev-Events";
    /// On gap records: how many events were lost.
    pub const GAP: &str = "Netev-Gap";
    /// `netev` or `ocsf`.
    pub const FORMAT: &str = "Netev-Format";
}

/// One subject token for a host name: every character other than ASCII
/// letters, digits, `-` and `_` becomes `_` (so `.`, `*`, `>` and
/// whitespace never reach the subject); an empty name becomes `_`.
/// `web-1.example.com` → `web-1_example_com`. Two hosts may share a token
/// (`a.b` and `a_b`); the `Netev-Host` header tells them apart.
pub fn host_token(host: &str) -> String {
    let t: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() {
        "_".into()
    } else {
        t
    }
}

/// The stream made when there is none: `name`, subjects `{subject}.>`,
/// file storage, one replica, the [`DUPLICATE_WINDOW`], no other limits.
/// (An operator who wants replicas or limits creates the stream first;
/// an existing stream is never changed.)
pub fn stream_config(name: &str, subject: &str) -> stream::Config {
    stream::Config {
        name: name.into(),
        subjects: vec![format!("{subject}.>")],
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
}

/// How netev connects to NATS for `target` (exporter and netev-sql alike):
/// the creds file if one is named, TLS with the given CA (required then:
/// `nats://` with `ca=` means TLS), bounded connect and request timeouts.
pub async fn connect_options(target: &ExportTarget, name: &str) -> Result<ConnectOptions> {
    let mut opts = ConnectOptions::new()
        .name(name)
        .connection_timeout(CONNECT_TIMEOUT)
        .request_timeout(Some(ACK_TIMEOUT));
    if let Some(creds) = &target.options.creds {
        opts = opts.credentials_file(creds).await.map_err(|e| {
            Error::Config(format!(
                "the creds file {} is not usable: {e}",
                creds.display()
            ))
        })?;
    }
    if let Some(ca) = &target.options.ca {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    Ok(opts)
}

/// The servers of a `nats://` target, as async-nats takes them.
pub fn server_addrs(target: &ExportTarget) -> Result<Vec<ServerAddr>> {
    let Destination::Nats { servers } = &target.destination else {
        return Err(Error::Config(format!("{target}: not a nats:// target")));
    };
    servers
        .iter()
        .map(|s| {
            format!("nats://{s}").parse::<ServerAddr>().map_err(|e| {
                Error::Config(format!("{target}: server {s:?} is not an address: {e}"))
            })
        })
        .collect()
}

pub(crate) struct Nats {
    rt: tokio::runtime::Runtime,
    servers: Vec<ServerAddr>,
    target: ExportTarget,
    subject: String,
    stream: String,
    subject_prefix: String,
    format: Format,
    js: Option<jetstream::Context>,
    /// The stream was found (or made) on this connection.
    stream_ready: bool,
}

impl Nats {
    pub(crate) fn new(target: &ExportTarget, host: &str) -> Result<Nats> {
        let servers = server_addrs(target)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(crate::io_err("starting the NATS client's runtime"))?;
        if let Some(creds) = &target.options.creds {
            // A creds file that does not parse cannot get better by
            // waiting: refused at start. (It is read again at each
            // connection, so a rotated file is taken.)
            rt.block_on(ConnectOptions::new().credentials_file(creds))
                .map_err(|e| {
                    Error::Config(format!(
                        "{target}: the creds file {} is not usable: {e}",
                        creds.display()
                    ))
                })?;
        }
        Ok(Nats {
            rt,
            servers,
            target: target.clone(),
            subject: format!("{}.{}", target.options.subject, host_token(host)),
            stream: target.options.stream.clone(),
            subject_prefix: target.options.subject.clone(),
            format: target.format,
            js: None,
            stream_ready: false,
        })
    }

    async fn connect(&self) -> Result<jetstream::Context> {
        let opts = connect_options(&self.target, "netev-export").await?;
        let client = tokio::time::timeout(CONNECT_TIMEOUT * 2, opts.connect(self.servers.clone()))
            .await
            .map_err(|_| Error::Delivery("connecting to NATS timed out".into()))?
            .map_err(|e| Error::Delivery(format!("connecting to NATS: {e}")))?;
        let mut js = jetstream::new(client);
        js.set_timeout(ACK_TIMEOUT);
        Ok(js)
    }

    /// Finds the stream, or creates it if there is none; an existing
    /// stream's configuration is left as its owner set it.
    async fn ensure_stream(&self, js: &jetstream::Context) -> Result<()> {
        match js.get_stream(&self.stream).await {
            Ok(_) => return Ok(()),
            Err(e) => match e.kind() {
                jetstream::context::GetStreamErrorKind::JetStream(j)
                    if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND => {}
                _ => {
                    return Err(Error::Delivery(format!(
                        "looking up stream {}: {e}",
                        self.stream
                    )))
                }
            },
        }
        let config = stream_config(&self.stream, &self.subject_prefix);
        match js.create_stream(config).await {
            Ok(_) => {
                tracing::info!(stream = %self.stream, "created the JetStream stream");
                Ok(())
            }
            // another exporter made it meanwhile
            Err(_) if js.get_stream(&self.stream).await.is_ok() => Ok(()),
            Err(e) => Err(Error::Delivery(format!(
                "creating stream {} (subjects {}.>): {e}",
                self.stream, self.subject_prefix
            ))),
        }
    }

    async fn publish(
        &self,
        js: &jetstream::Context,
        meta: &BatchMeta,
        payload: &[u8],
    ) -> Result<()> {
        let mut h = HeaderMap::new();
        h.insert(async_nats::header::NATS_MESSAGE_ID, meta.id.as_str());
        h.insert(headers::HOST, meta.host.as_str());
        h.insert(headers::EVENTS, meta.events.to_string().as_str());
        if let Some(lost) = meta.gap {
            h.insert(headers::GAP, lost.to_string().as_str());
        }
        h.insert(headers::FORMAT, self.format.name());
        let ack = js
            .publish_with_headers(self.subject.clone(), h, Bytes::copy_from_slice(payload))
            .await
            .map_err(|e| Error::Delivery(format!("publishing to {}: {e}", self.subject)))?;
        tokio::time::timeout(ACK_TIMEOUT, ack)
            .await
            .map_err(|_| {
                Error::Delivery(format!(
                    "no ack from stream {} within {ACK_TIMEOUT:?}",
                    self.stream
                ))
            })?
            .map_err(|e| Error::Delivery(format!("publishing to {}: {e}", self.subject)))?;
        Ok(())
    }
}

impl Output for Nats {
    fn encode(&mut self, batch: &Batch) -> Vec<u8> {
        let mut out = Vec::new();
        match &batch.body {
            Body::Events(events) => {
                for ev in events {
                    event_json(self.format, &batch.meta.host, ev, &mut out);
                    out.push(b'\n');
                }
            }
            Body::Gap(gap) => {
                gap_json(self.format, gap, &mut out);
                out.push(b'\n');
            }
        }
        out
    }

    fn deliver(&mut self, meta: &BatchMeta, payload: &[u8]) -> Result<()> {
        let js = match self.js.take() {
            Some(js) => js,
            None => self.rt.block_on(self.connect())?,
        };
        let result = self.rt.block_on(async {
            if !self.stream_ready {
                self.ensure_stream(&js).await?;
            }
            self.publish(&js, meta, payload).await
        });
        // The client keeps reconnecting by itself; the stream is checked
        // again after a failure (someone may have deleted it).
        self.stream_ready = result.is_ok();
        self.js = Some(js);
        result
    }
}

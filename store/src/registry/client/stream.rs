//! Uploading a blob whose digest is not known yet: the chunked-upload
//! flow of the distribution spec (`POST` to open a session, one `PATCH`
//! streaming the bytes, `PUT ?digest=` to close it once the last byte, and
//! so the digest, is known). A push uses it to send a layer while it is
//! being compressed, instead of compressing it all first and uploading
//! after.
//!
//! The `PATCH` body is a pipe and cannot be rewound, so unlike
//! [`Client::put_blob`] nothing here retries the body: a failure is
//! returned and the caller uploads the (by then stored) blob again the
//! ordinary way. Authentication is settled by the `POST`, whose token
//! covers the same push scope as the `PATCH` and `PUT`.

use std::io::Read;

use super::{push_scope, query_digest_pair, Call, Client};
use crate::oci::Digest;
use crate::registry::endpoint::{resolve_location, with_query};
use crate::registry::Error;

/// An open upload session: where the next request goes.
#[derive(Debug)]
pub struct UploadSession {
    repo: String,
    location: String,
}

impl UploadSession {
    /// The URL the next request of the session goes to.
    pub(crate) fn location(&self) -> &str {
        &self.location
    }
}

impl Client {
    /// Opens an upload session in `repo` (`POST /v2/<repo>/blobs/uploads/`).
    ///
    /// # Errors
    /// The registry's refusal (e.g. `DENIED`), [`Error::Location`] when it
    /// names no upload URL, and the transport/auth errors.
    pub fn start_upload(&self, repo: &str) -> Result<UploadSession, Error> {
        let url = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let response = self.execute(Call::new(
            "start upload",
            "POST",
            url.clone(),
            vec![push_scope(repo)],
        ))?;
        if response.status() != 202 {
            return Err(self.status_error("start upload", &url, response));
        }
        let location = match response.header("Location").map(str::trim) {
            Some(loc) if !loc.is_empty() => resolve_location(&self.base, &url, loc),
            _ => {
                return Err(Error::Location {
                    url,
                    location: String::new(),
                })
            }
        };
        Ok(UploadSession {
            repo: repo.to_string(),
            location,
        })
    }

    /// Streams `body` into the session as one chunk of unknown length
    /// (HTTP chunked transfer encoding) and moves the session on to the
    /// location the registry answers with. Sent once, never retried.
    ///
    /// # Errors
    /// The registry's refusal, a broken connection, a body that failed.
    pub fn upload_chunk(
        &self,
        session: &mut UploadSession,
        body: &mut dyn Read,
    ) -> Result<(), Error> {
        let url = session.location.clone();
        let mut request = self
            .agent
            .request("PATCH", &url)
            .set("Content-Type", "application/octet-stream");
        if let Some(value) = self.authorization(&[push_scope(&session.repo)])? {
            request = request.set("Authorization", &value);
        }
        let response = match request.send(body) {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(ureq::Error::Transport(transport)) => {
                return Err(Error::Transport {
                    op: "upload blob",
                    url,
                    source: Box::new(transport),
                })
            }
        };
        if response.status() != 202 {
            return Err(self.status_error("upload blob", &url, response));
        }
        session.location = match response.header("Location").map(str::trim) {
            Some(loc) if !loc.is_empty() => resolve_location(&self.base, &url, loc),
            _ => url,
        };
        Ok(())
    }

    /// Closes the session, telling the registry the blob's digest, which it
    /// checks against the bytes it received.
    ///
    /// # Errors
    /// `DIGEST_INVALID` and other refusals, and the transport/auth errors.
    pub fn finish_upload(&self, session: UploadSession, digest: &Digest) -> Result<(), Error> {
        let url = with_query(&session.location, &query_digest_pair(digest));
        let call = Call::new(
            "finish upload",
            "PUT",
            url.clone(),
            vec![push_scope(&session.repo)],
        )
        .header("Content-Length", "0");
        let response = self.execute(call)?;
        match response.status() {
            201 | 204 => Ok(()),
            _ => Err(self.status_error("finish upload", &url, response)),
        }
    }
}

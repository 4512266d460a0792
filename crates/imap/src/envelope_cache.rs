//! Envelopes of recently fetched messages, shared by every session of this process (performance:
//! a client's message list asks for the ENVELOPE of every message it shows, and building one
//! means reading the message and parsing its header; Dovecot keeps envelopes in its cache
//! file for the same reason).
//!
//! Keyed by the body's id, which names its content (SHA-256: `postfach_store::BlobId`,
//! `postfach_store::inline_id`), and by whether the session enabled UTF8=ACCEPT (RFC 6855
//! changes how header fields are rendered): an entry can never be stale, so no change has to
//! reach it. Bounded: two generations of at most [`PER_GENERATION`] entries each; when the
//! young one is full it becomes the old one and the old one goes; a hit in the old generation
//! moves to the young one, so what is in use stays.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// An envelope in its wire form (`wire::envelope_wire`): what a FETCH writes out as it is.
pub(crate) type Envelope = Arc<[u8]>;

/// Entries per generation (an envelope on the wire is a few hundred bytes: at most
/// ~2 × 32,768 of them, ~20 MiB, next to the folder index cache's 100,000 rows).
pub(crate) const PER_GENERATION: usize = 32_768;

/// One generation: envelopes by body id, one map per rendering (`[plain, utf8]`).
type Generation = [HashMap<Arc<str>, Envelope>; 2];

pub(crate) struct EnvelopeCache {
    limit: usize,
    gens: Mutex<(Generation, Generation)>,
}

impl Default for EnvelopeCache {
    fn default() -> Self {
        Self::with_limit(PER_GENERATION)
    }
}

impl EnvelopeCache {
    pub(crate) fn with_limit(limit: usize) -> Self {
        EnvelopeCache {
            limit: limit.max(1),
            gens: Mutex::default(),
        }
    }

    /// The cached envelopes of `blob_ids` (in order; `None` where there is none), under one
    /// lock for the whole FETCH.
    pub(crate) fn get_many<'a>(
        &self,
        blob_ids: impl Iterator<Item = &'a str>,
        utf8: bool,
    ) -> Vec<Option<Envelope>> {
        let Ok(mut gens) = self.gens.lock() else {
            return blob_ids.map(|_| None).collect();
        };
        let k = usize::from(utf8);
        let mut out = Vec::new();
        for id in blob_ids {
            if let Some(e) = gens.0[k].get(id) {
                out.push(Some(e.clone()));
            } else if let Some((id, e)) = gens.1[k].remove_entry(id) {
                out.push(Some(e.clone()));
                self.insert(&mut gens, k, id, e);
            } else {
                out.push(None);
            }
        }
        out
    }

    /// Keeps envelopes just built from their messages.
    pub(crate) fn put_many(&self, entries: Vec<(Arc<str>, Envelope)>, utf8: bool) {
        if entries.is_empty() {
            return;
        }
        if let Ok(mut gens) = self.gens.lock() {
            let k = usize::from(utf8);
            for (id, e) in entries {
                self.insert(&mut gens, k, id, e);
            }
        }
    }

    fn insert(&self, gens: &mut (Generation, Generation), k: usize, id: Arc<str>, e: Envelope) {
        let young = gens.0[0].len() + gens.0[1].len();
        if young >= self.limit && !gens.0[k].contains_key(&id) {
            gens.1 = std::mem::take(&mut gens.0);
        }
        gens.0[k].insert(id, e);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let gens = self.gens.lock().unwrap();
        gens.0.iter().chain(gens.1.iter()).map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch;

    fn env(subject: &str) -> Envelope {
        let raw = format!("From: a@b.example\r\nSubject: {subject}\r\n\r\nx\r\n");
        let m = fetch::parse_headers(raw.as_bytes()).unwrap();
        crate::wire::envelope_wire(&fetch::envelope(&m, false)).into()
    }

    #[test]
    fn hits_misses_renderings_and_the_bound() {
        let c = EnvelopeCache::with_limit(2);
        c.put_many(
            vec![(Arc::from("a"), env("A")), (Arc::from("b"), env("B"))],
            false,
        );
        let got = c.get_many(["a", "b", "z"].into_iter(), false);
        assert_eq!(got, vec![Some(env("A")), Some(env("B")), None]);
        // The UTF8=ACCEPT rendering is kept apart.
        assert_eq!(c.get_many(["a"].into_iter(), true), vec![None]);
        // The young generation is full: "c" starts a new one, "a" and "b" become old.
        c.put_many(vec![(Arc::from("c"), env("C"))], false);
        assert_eq!(c.len(), 3);
        // A hit in the old generation moves to the young one…
        assert_eq!(c.get_many(["a"].into_iter(), false), vec![Some(env("A"))]);
        // …so when the young one turns over again, "a" survives and "b" is gone.
        c.put_many(vec![(Arc::from("d"), env("D"))], false);
        let got = c.get_many(["a", "b", "c", "d"].into_iter(), false);
        assert_eq!(
            got,
            vec![Some(env("A")), None, Some(env("C")), Some(env("D"))]
        );
        assert!(c.len() <= 2 * 2, "bounded: {}", c.len());
    }
}

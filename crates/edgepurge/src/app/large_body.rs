//! Large bodies without their events or records all in memory. A body of S3-shaped records is
//! read twice, each record becoming an event and that event's records as it is read: once
//! here, to refuse a bad or oversized body whole and count what it holds, and once by the
//! store's writer, which writes each record and lets it go inside the body's one transaction.
//! Only the body itself is held, so a body takes about its own size plus the store's cache,
//! not the several times its size its events and records would (docs/performance.md).

use super::planner::{Planner, TooManyJobs};
use crate::store::{IngestRecord, RecordSource, StoreError, StoreResult};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a body holds, as counted before it is written.
#[derive(Debug, Default)]
pub(super) struct Survey {
    pub events: usize,
    pub records: usize,
    /// Jobs of all records, and per lane.
    pub jobs: usize,
    pub lanes: BTreeMap<String, usize>,
    pub formats: BTreeMap<&'static str, u64>,
}

/// Reads `body` once through the fast path, counting what each event's records would hold
/// and letting the event go: `None`
/// when the body is not plainly S3-shaped records (it is then parsed whole, with the precise
/// errors), `Err` when its records would hold more than `max_jobs` jobs.
pub(super) fn survey(
    planner: &Planner,
    body: &[u8],
    max_jobs: usize,
) -> Result<Option<Survey>, TooManyJobs> {
    let mut s = Survey::default();
    let mut refused = None;
    let read = edgepurge_core::event::each_event(body, &mut |event| {
        *s.formats.entry(event.format.as_str()).or_default() += 1;
        let lanes = &mut s.lanes;
        let planned = planner
            .count_event_records(&event, &mut s.jobs, max_jobs, &mut |lane| match lanes
                .get_mut(lane)
            {
                Some(n) => *n += 1,
                None => {
                    lanes.insert(lane.to_owned(), 1);
                }
            })
            .map(|n| s.records += n);
        match planned {
            Ok(()) => true,
            Err(e) => {
                refused = Some(e);
                false
            }
        }
    });
    if let Some(e) = refused {
        return Err(e);
    }
    Ok(read.map(|events| Survey { events, ..s }))
}

/// A surveyed body's records, made again from the body as the store writes them.
pub(super) struct BodyRecords {
    pub body: Vec<u8>,
    pub planner: Arc<Planner>,
    pub records: usize,
}

impl RecordSource for BodyRecords {
    fn records(&self) -> usize {
        self.records
    }

    fn each(&self, f: &mut dyn FnMut(IngestRecord) -> StoreResult<()>) -> StoreResult<()> {
        let mut failed = None;
        let mut jobs = 0;
        let read = edgepurge_core::event::each_event(&self.body, &mut |event| {
            let mut out = Ok(());
            // Never over the cap: the survey counted the same jobs.
            let _ = self
                .planner
                .event_records(&event, &mut jobs, usize::MAX, &mut |r| {
                    if out.is_ok() {
                        out = f(r);
                    }
                });
            match out {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        });
        match (failed, read) {
            (Some(e), _) => Err(e),
            (None, Some(_)) => Ok(()),
            // The body was surveyed through the same path: it cannot read differently.
            (None, None) => Err(StoreError::Unavailable(
                "a surveyed body could not be read again; nothing of it was stored".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::store::StoredRule;

    fn planner() -> Planner {
        let cfg = parse(
            r#"
            [providers.edge]
            kind = "http-purge"
            preset = "varnish"
            nodes = ["127.0.0.1:6081", "127.0.0.2:6081"]
            [[rules]]
            name = "imgs"
            bucket = "assets"
            events = ["created"]
            prefix = "img/"
            domains = ["https://cdn.example.com"]
            provider = "edge"
            "#,
        )
        .unwrap()
        .validate()
        .unwrap();
        let stored: Vec<StoredRule> = cfg
            .rules
            .iter()
            .map(|r| StoredRule::from_config(&r.spec))
            .collect();
        Planner::new(&stored, &cfg.providers, true).0
    }

    fn body(keys: &[&str]) -> Vec<u8> {
        let records: Vec<String> = keys
            .iter()
            .map(|k| {
                format!(
                    r#"{{"eventSource":"ceph:s3","eventName":"ObjectCreated:Put","s3":{{"bucket":{{"name":"assets"}},"object":{{"key":"{k}"}}}}}}"#
                )
            })
            .collect();
        format!(r#"{{"Records":[{}]}}"#, records.join(",")).into_bytes()
    }

    #[test]
    fn a_body_read_record_by_record_makes_the_records_of_its_parsed_events() {
        let p = planner();
        let body = body(&["img/a.png", "css/b.css", "img/c d.png"]);
        let s = survey(&p, &body, 100).unwrap().unwrap();
        let whole = p.records(&edgepurge_core::parse_body(&body).unwrap().events);
        // Two targets on an account of two nodes: stored once each (fan-out), both nodes told.
        assert_eq!((s.events, s.records, s.jobs), (3, 3, 2));
        assert_eq!(s.records, whole.len());
        assert_eq!(
            s.jobs,
            whole
                .iter()
                .map(|r| r.jobs.len() + r.fanout.len())
                .sum::<usize>()
        );
        assert_eq!(s.formats.get("ceph"), Some(&3));
        assert_eq!(
            s.lanes.into_iter().collect::<Vec<_>>(),
            vec![
                ("edge@127.0.0.1:6081".to_owned(), 2),
                ("edge@127.0.0.2:6081".to_owned(), 2)
            ]
        );
        let source = BodyRecords {
            body: body.clone(),
            planner: Arc::new(p),
            records: s.records,
        };
        // Twice, the same records (a store may run its transaction again).
        for _ in 0..2 {
            let mut made = Vec::new();
            source
                .each(&mut |r| {
                    made.push(r);
                    Ok(())
                })
                .unwrap();
            assert_eq!(made, whole);
        }
        // The store's error stops the making at once and is returned.
        let mut calls = 0;
        let err = source
            .each(&mut |_| {
                calls += 1;
                Err(StoreError::Busy("full".into()))
            })
            .unwrap_err();
        assert_eq!((err, calls), (StoreError::Busy("full".into()), 1));
    }

    #[test]
    fn a_body_over_the_job_cap_is_refused_while_surveyed_and_others_are_left_to_the_parser() {
        let p = planner();
        let body = body(&["img/a.png", "img/b.png"]);
        assert_eq!(survey(&p, &body, 1).unwrap_err(), TooManyJobs { max: 1 });
        assert!(survey(&p, &body, 2).unwrap().is_some());
        // Not S3 records, or not JSON: for the parser and its precise errors.
        assert!(survey(&p, br#"{"Records":"#, 4).unwrap().is_none());
        assert!(survey(&p, br#"{"name":"OBJECT_FINALIZE"}"#, 4)
            .unwrap()
            .is_none());
    }
}

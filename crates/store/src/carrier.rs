//! Carrier storage: RADIUS accounting history, the live SIM session table (written by the
//! [`crate::Writer`] with each record) and the record of every call to the carrier's SIM API.

use crate::records::SimSessionRow;
use crate::{Result, Store};
use std::future::Future;

/// One stored accounting record.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountingRow {
    pub id: i64,
    pub at: i64,
    pub client_ip: String,
    /// `start`, `interim`, `stop`, `accounting_on`, `accounting_off` or `other`.
    pub status: String,
    pub imsi: Option<String>,
    pub msisdn: Option<String>,
    pub framed_ip: Option<String>,
    pub session_id: Option<String>,
    /// Uplink bytes of the session so far.
    pub input_octets: i64,
    /// Downlink bytes of the session so far.
    pub output_octets: i64,
    pub session_time: Option<i64>,
}

/// One call to the carrier's SIM API and how it ended.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SimActionRow {
    pub id: i64,
    pub at: i64,
    pub field_id: Option<String>,
    pub device_id: Option<String>,
    /// The IMSI or ICCID sent to the carrier.
    pub sim: String,
    /// `suspend`, `resume`, `status` or `usage`.
    pub action: String,
    /// Who asked: `user:<name>`, `response:<decision>` or `system`.
    pub actor: String,
    /// `ok` or `failed`.
    pub outcome: String,
    /// The carrier error code when it failed.
    pub error: Option<String>,
    pub detail: Option<String>,
    pub attempts: i64,
    pub elapsed_ms: i64,
}

/// The live SIM table, RADIUS accounting history and calls to the carrier (⑧).
pub trait SimRepo: Send + Sync {
    /// Every SIM's live session row (the gateway rebuilds its table from them at start).
    fn sim_sessions(&self) -> impl Future<Output = Result<Vec<SimSessionRow>>> + Send;
    /// Accounting records of one SIM, newest first, with ids below `before` when given.
    fn accounting(
        &self,
        imsi: &str,
        before: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AccountingRow>>> + Send;
    /// Records one call to the carrier's SIM API (`id` is ignored).
    fn record_sim_action(&self, a: &SimActionRow) -> impl Future<Output = Result<i64>> + Send;
    /// The calls made for one device's SIM, newest first.
    fn sim_actions(
        &self,
        device_id: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<SimActionRow>>> + Send;
}

impl SimRepo for Store {
    async fn sim_sessions(&self) -> Result<Vec<SimSessionRow>> {
        Ok(sqlx::query_as("SELECT * FROM sim_sessions ORDER BY imsi")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn accounting(
        &self,
        imsi: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AccountingRow>> {
        Ok(sqlx::query_as(
            "SELECT id, at, client_ip, status, imsi, msisdn, framed_ip, session_id, input_octets, output_octets, \
             session_time FROM accounting WHERE imsi = ? AND id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(imsi)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn record_sim_action(&self, a: &SimActionRow) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO sim_actions (at, field_id, device_id, sim, action, actor, outcome, error, detail, attempts, \
             elapsed_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
        )
        .bind(a.at)
        .bind(&a.field_id)
        .bind(&a.device_id)
        .bind(&a.sim)
        .bind(&a.action)
        .bind(&a.actor)
        .bind(&a.outcome)
        .bind(&a.error)
        .bind(&a.detail)
        .bind(a.attempts)
        .bind(a.elapsed_ms)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn sim_actions(&self, device_id: &str, limit: u32) -> Result<Vec<SimActionRow>> {
        Ok(
            sqlx::query_as(
                "SELECT * FROM sim_actions WHERE device_id = ? ORDER BY id DESC LIMIT ?",
            )
            .bind(device_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use crate::records::{AccountingRecord, Record, SimSessionRow};
    use crate::test_util::open_temp;

    fn record(key: u8, status: &'static str, up: i64, online: bool) -> Record {
        let session = SimSessionRow {
            imsi: "440100000000001".into(),
            session_id: Some("s1".into()),
            client_ip: "10.0.0.1".into(),
            framed_ip: Some("10.45.0.7".into()),
            msisdn: None,
            online,
            started_at: 1,
            updated_at: key as i64,
            input_octets: up,
            output_octets: 0,
        };
        Record::Accounting(Box::new(AccountingRecord {
            at: key as i64,
            client_ip: "10.0.0.1".into(),
            packet_key: [key; 32],
            status,
            imsi: Some(session.imsi.clone()),
            msisdn: None,
            framed_ip: session.framed_ip.clone(),
            session_id: session.session_id.clone(),
            input_octets: up,
            output_octets: 0,
            session_time: None,
            session: Some(session),
        }))
    }

    #[tokio::test]
    async fn accounting_is_stored_once_and_the_live_row_follows_it() {
        let (store, _dir) = open_temp("carrier").await;
        let w = &store.writer;
        w.submit(vec![record(1, "start", 0, true)])
            .unwrap()
            .await
            .unwrap();
        w.submit(vec![record(2, "interim", 500, true)])
            .unwrap()
            .await
            .unwrap();
        // A retransmission (same packet key) with other contents changes nothing.
        w.submit(vec![record(2, "interim", 999, true)])
            .unwrap()
            .await
            .unwrap();
        let rows = store.accounting("440100000000001", None, 10).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].input_octets, 500);
        let live = store.sim_sessions().await.unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!((live[0].input_octets, live[0].online), (500, true));

        w.submit(vec![Record::SessionsOffline {
            client_ip: "10.0.0.1".into(),
            at: 3,
        }])
        .unwrap()
        .await
        .unwrap();
        let live = store.sim_sessions().await.unwrap();
        assert_eq!((live[0].online, live[0].updated_at), (false, 3));
    }
}

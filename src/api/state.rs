//! What the API handlers share: the reconciler's address, the logs, the events and the token
//! check; and the questions most handlers ask the reconciler.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper::header::HeaderMap;
use tokio::sync::{mpsc, oneshot};

use crate::config::edit::instance_file_path;
use crate::desired::select::undeclared;
use crate::events::EventLog;
use crate::names::InstanceKey;
use crate::reconcile::{Call, Message};
use crate::runtime::logs::LogHub;

use super::auth::{Auth, Refused};
use super::error::{CallError, select_error};
use super::scope::Scope;
use super::types::{InstanceView, StatusView};
use super::views;

pub(crate) struct ApiState {
    /// Which config this server serves (`server::config_id`), for `/health`.
    pub config_id: String,
    pub reconciler: mpsc::Sender<Message>,
    pub logs: Arc<LogHub>,
    pub events: EventLog,
    pub auth: Auth,
    /// The certificates, when ten serves HTTPS.
    pub certificates: Option<Arc<crate::tls::Certificates>>,
}

impl ApiState {
    /// Asks the reconciler and waits for its answer.
    pub(crate) async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Call,
    ) -> Result<T, CallError> {
        let (sender, receiver) = oneshot::channel();
        self.reconciler
            .send(Message::Call(make(sender)))
            .await
            .map_err(|_| CallError::new(503, "ten is shutting down"))?;
        receiver
            .await
            .map_err(|_| CallError::new(503, "ten is shutting down"))
    }

    /// The bearer token's scope, or why the request is refused (see `refusal`); a failure
    /// counts against `client`.
    pub(crate) fn authenticate(
        &self,
        headers: &HeaderMap,
        client: IpAddr,
    ) -> Result<Scope, Refused> {
        self.auth
            .authenticate(headers, client, std::time::Instant::now())
    }

    /// The certificates of HTTPS, if ten serves it.
    pub(super) fn certs(&self) -> super::types::CertsView {
        match &self.certificates {
            Some(certificates) => super::types::CertsView {
                https: true,
                directory: Some(certificates.directory().to_string()),
                names: certificates.views(),
            },
            None => super::types::CertsView {
                https: false,
                directory: None,
                names: Vec::new(),
            },
        }
    }

    pub(super) async fn status(&self) -> Result<StatusView, CallError> {
        self.ask(Call::Status).await.map(views::status_view)
    }

    /// Reloads the files now and runs a pass; the status after it.
    pub(super) async fn reload(&self) -> Result<StatusView, CallError> {
        self.ask(Call::Reload).await.map(views::status_view)
    }

    /// Every instance, as `ten ps` shows it.
    pub(super) async fn views(&self) -> Result<Vec<InstanceView>, CallError> {
        self.ask(Call::Instances)
            .await
            .map(|snapshot| views::snapshot_views(&snapshot))
    }

    pub(super) async fn view(&self, key: &InstanceKey) -> Option<InstanceView> {
        let views = self.views().await.ok()?;
        views.into_iter().find(|view| view.instance == *key)
    }

    /// `key` is declared; else a 404 that says why not: its service is not declared (with a
    /// "did you mean"), or it is not (`ten spawn` declares it).
    pub(super) async fn must_be_declared(&self, key: &InstanceKey) -> Result<(), CallError> {
        self.must_be_known(key, false).await
    }

    /// `key` has output to show, or may have some yet: it is declared, still in the process
    /// table (no longer declared, not destroyed yet), or its captured output is still on
    /// disk. Else the error of [`Self::must_be_declared`].
    pub(super) async fn must_have_logs(&self, key: &InstanceKey) -> Result<(), CallError> {
        if self.logs.attached(key)
            || tokio::fs::try_exists(self.logs.paths(key).log_dir)
                .await
                .unwrap_or(false)
        {
            return Ok(());
        }
        self.must_be_known(key, true).await
    }

    /// `key` has events to show, or may have some yet: it is declared, still in the process
    /// table, or has events in the ring. Else the error of [`Self::must_be_declared`].
    pub(super) async fn must_have_events(&self, key: &InstanceKey) -> Result<(), CallError> {
        let filter = crate::events::EventFilter::instance(key.clone());
        if !self.events.recent(&filter, 1).is_empty() {
            return Ok(());
        }
        self.must_be_known(key, true).await
    }

    /// `key` is declared, or, with `undeclared_running`, still in the process table.
    async fn must_be_known(
        &self,
        key: &InstanceKey,
        undeclared_running: bool,
    ) -> Result<(), CallError> {
        // Declared, or (when asked) in the process table: one key looked up, no views made.
        let snapshot = self.ask(Call::Instances).await?;
        let known = snapshot.desired.instances.contains_key(key)
            || (undeclared_running && snapshot.observed.instances.contains_key(key));
        if known {
            return Ok(());
        }
        Err(select_error(undeclared(&snapshot.desired, key)))
    }

    pub(super) fn instance_file(&self, status: &StatusView, key: &InstanceKey) -> PathBuf {
        instance_file_path(std::path::Path::new(&status.instances_dir), key)
    }
}

//! One PostgreSQL client shared by request handlers (users, favorites, scheduled tasks), which
//! reconnects when its connection is gone: after a PostgreSQL restart or a network cut the next
//! request connects again instead of failing forever. Single statements only (no transactions:
//! requests share the connection).

use std::sync::Arc;

use tokio_postgres::Client;

use super::StoreError;

pub struct SharedClient {
    url: String,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
}

impl SharedClient {
    /// Connects once (so that a wrong URL fails at start).
    pub async fn connect(url: &str) -> Result<SharedClient, StoreError> {
        let client = super::connect(url).await?;
        Ok(SharedClient {
            url: url.into(),
            client: tokio::sync::Mutex::new(Some(Arc::new(client))),
        })
    }

    /// The client, connected again first when its connection has closed.
    pub async fn get(&self) -> Result<Arc<Client>, StoreError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        *slot = None;
        let client = Arc::new(super::connect(&self.url).await?);
        tracing::info!("store: request client connected again");
        *slot = Some(client.clone());
        Ok(client)
    }
}

//! The process's stop signal, for `serve` and `proxy` alike: Ctrl-C or SIGTERM.

/// Waits for Ctrl-C or SIGTERM and logs which came.
pub async fn until_stopped() {
    let term = async {
        #[cfg(unix)]
        {
            if let Ok(mut s) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                s.recv().await;
                return;
            }
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
        _ = term => tracing::info!("terminated"),
    }
}

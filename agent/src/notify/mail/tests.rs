use super::*;
use crate::notify::action::{NotifyState, Scope};
use crate::notify::alert::vrrp_alert;

use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// What the sink received in one SMTP transaction.
#[derive(Debug, Clone, Default)]
pub(crate) struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: String,
}

impl Received {
    pub fn subject(&self) -> Option<String> {
        self.data
            .lines()
            .find_map(|line| line.strip_prefix("Subject: "))
            .map(str::to_owned)
    }
}

/// Just enough SMTP on 127.0.0.1 to accept messages.
pub(crate) async fn smtp_sink() -> (u16, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let mut current = Received::default();
                write.write_all(b"220 sink ESMTP\r\n").await.ok()?;
                while let Some(line) = lines.next_line().await.ok()? {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250 sink\r\n"
                    } else if upper.starts_with("MAIL FROM:") {
                        current.mail_from = line[10..].trim().to_owned();
                        b"250 ok\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        current.rcpt_to.push(line[8..].trim().to_owned());
                        b"250 ok\r\n"
                    } else if upper == "DATA" {
                        write.write_all(b"354 go ahead\r\n").await.ok()?;
                        let mut data = String::new();
                        while let Some(line) = lines.next_line().await.ok()? {
                            if line == "." {
                                break;
                            }
                            data.push_str(&line);
                            data.push('\n');
                        }
                        current.data = data;
                        tx.send(std::mem::take(&mut current)).ok()?;
                        b"250 queued\r\n"
                    } else if upper == "QUIT" {
                        write.write_all(b"221 bye\r\n").await.ok()?;
                        return Some(());
                    } else {
                        b"250 ok\r\n"
                    };
                    write.write_all(reply).await.ok()?;
                }
                Some(())
            });
        }
    });
    (port, rx)
}

fn config(port: u16) -> SmtpConfig {
    let mut config = SmtpConfig::new(
        "127.0.0.1",
        "root@localhost",
        vec!["ops@example.com".into(), "noc@example.com".into()],
    );
    config.port = port;
    config.connect_timeout = Duration::from_secs(2);
    config.helo_name = Some("vrrp-agent.test".into());
    config
}

fn fast_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
    }
}

#[test]
fn backoff_doubles_and_caps() {
    let policy = RetryPolicy {
        attempts: 5,
        initial_backoff: Duration::from_secs(2),
        max_backoff: Duration::from_secs(10),
    };
    assert_eq!(policy.backoff(0), Duration::from_secs(2));
    assert_eq!(policy.backoff(1), Duration::from_secs(4));
    assert_eq!(policy.backoff(2), Duration::from_secs(8));
    assert_eq!(policy.backoff(3), Duration::from_secs(10));
    assert_eq!(policy.backoff(200), Duration::from_secs(10));
}

#[tokio::test]
async fn bad_addresses_are_rejected_up_front() {
    let mut bad_from = config(25);
    bad_from.from = "not an address".into();
    let err = Mailer::spawn(bad_from, fast_retry(1), 4).unwrap_err();
    assert!(
        err.to_string()
            .contains("notification_email_from `not an address`")
    );

    let mut bad_to = config(25);
    bad_to.recipients = vec!["ops@example.com".into(), "@@".into()];
    assert!(matches!(
        Mailer::spawn(bad_to, fast_retry(1), 4).unwrap_err(),
        MailError::BadRecipient { .. }
    ));

    let mut none = config(25);
    none.recipients.clear();
    assert!(matches!(
        Mailer::spawn(none, fast_retry(1), 4).unwrap_err(),
        MailError::NoRecipients
    ));
}

#[tokio::test]
async fn delivers_one_message_per_alert_to_all_recipients() {
    let (port, mut received) = smtp_sink().await;
    let (mailer, worker) = Mailer::spawn(config(port), fast_retry(3), 8).unwrap();
    mailer.send(vrrp_alert(
        "KEEPALIVED_TEST",
        Scope::Instance,
        "master1",
        NotifyState::Master,
    ));
    mailer.send(vrrp_alert(
        "KEEPALIVED_TEST",
        Scope::Instance,
        "master1",
        NotifyState::Backup,
    ));
    mailer.close();
    let stats = tokio::time::timeout(Duration::from_secs(20), worker)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stats,
        MailStats {
            sent: 2,
            ..MailStats::default()
        }
    );

    let first = received.recv().await.unwrap();
    assert_eq!(first.mail_from, "<root@localhost>");
    assert_eq!(first.rcpt_to, ["<ops@example.com>", "<noc@example.com>"]);
    assert_eq!(
        first.subject().as_deref(),
        Some("[KEEPALIVED_TEST] VRRP Instance master1 - Entering MASTER state")
    );
    assert!(
        first.data.contains("From: root@localhost"),
        "{}",
        first.data
    );
    assert!(
        first.data.contains("To: ops@example.com, noc@example.com"),
        "{}",
        first.data
    );
    assert!(
        first
            .data
            .contains("=> VRRP Instance is now owning VRRP VIPs <=")
    );
    let second = received.recv().await.unwrap();
    assert_eq!(
        second.subject().as_deref(),
        Some("[KEEPALIVED_TEST] VRRP Instance master1 - Entering BACKUP state")
    );
}

#[tokio::test]
async fn dead_server_gets_bounded_retries_and_never_blocks() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (mailer, worker) = Mailer::spawn(config(port), fast_retry(3), 8).unwrap();
    let started = Instant::now();
    for _ in 0..3 {
        mailer.send(vrrp_alert("r", Scope::Instance, "VI_1", NotifyState::Fault));
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "send blocked"
    );
    mailer.close();
    let stats = tokio::time::timeout(Duration::from_secs(20), worker)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stats.sent, 0);
    assert_eq!(stats.failed_attempts, 9);
    assert_eq!(stats.abandoned, 3);
}

#[tokio::test]
async fn full_queue_drops_the_oldest() {
    // A server that accepts but never greets keeps the worker busy with the
    // first message while the queue fills.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let mut cfg = config(port);
    cfg.connect_timeout = Duration::from_millis(200);
    let (mailer, worker) = Mailer::spawn(cfg, fast_retry(1), 2).unwrap();
    for state in [
        NotifyState::Master,
        NotifyState::Backup,
        NotifyState::Fault,
        NotifyState::Stop,
    ] {
        mailer.send(vrrp_alert("r", Scope::Instance, "VI_1", state));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    mailer.close();
    let stats = tokio::time::timeout(Duration::from_secs(20), worker)
        .await
        .unwrap()
        .unwrap();
    // The first was taken by the worker; of the other three, one was dropped.
    assert_eq!(stats.dropped, 1);
    assert_eq!(stats.abandoned, 3);
}

#[tokio::test]
async fn dropping_the_last_handle_ends_the_task_after_the_queue() {
    let (port, mut received) = smtp_sink().await;
    let (mailer, worker) = Mailer::spawn(config(port), fast_retry(1), 8).unwrap();
    let other = mailer.clone();
    drop(mailer);
    other.send(vrrp_alert(
        "r",
        Scope::Instance,
        "VI_1",
        NotifyState::Master,
    ));
    drop(other);
    let stats = tokio::time::timeout(Duration::from_secs(20), worker)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stats.sent, 1);
    assert!(received.recv().await.is_some());
}

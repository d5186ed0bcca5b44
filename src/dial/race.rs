//! Happy Eyeballs v2 (RFC 8305): the addresses of one destination are tried in parallel with a
//! stagger instead of one after another, so an address family that silently drops packets costs
//! a quarter of a second instead of the whole connect timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinSet;

/// RFC 8305 §5's recommended Connection Attempt Delay.
pub const STAGGER: Duration = Duration::from_millis(250);

/// Orders addresses as RFC 8305 §4 asks: the families interleaved, IPv6 first, each family in
/// the order the answer gave it.
pub fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let (v6, v4): (Vec<_>, Vec<_>) = addrs.into_iter().partition(SocketAddr::is_ipv6);
    let (mut v6, mut v4) = (v6.into_iter(), v4.into_iter());
    let mut ordered = Vec::with_capacity(v6.len() + v4.len());
    loop {
        match (v6.next(), v4.next()) {
            (None, None) => return ordered,
            (a, b) => ordered.extend(a.into_iter().chain(b)),
        }
    }
}

/// Starts an attempt for the first address, and the next one whenever the newest attempt has
/// not connected within `stagger` or an attempt fails; the first connection wins and the other
/// attempts are dropped. The error is the last attempt's, `None` when there was no address.
pub async fn race<T, F, Fut>(
    candidates: Vec<SocketAddr>,
    stagger: Duration,
    connect: F,
) -> Result<(T, SocketAddr), Option<std::io::Error>>
where
    T: Send + 'static,
    F: Fn(SocketAddr) -> Fut,
    Fut: Future<Output = std::io::Result<T>> + Send + 'static,
{
    if let [addr] = candidates[..] {
        // One address (an entry's STATIC endpoint, a one-answer name): nothing to race, so no
        // task and no timer.
        return connect(addr).await.map(|c| (c, addr)).map_err(Some);
    }
    let mut queue = candidates.into_iter();
    let mut attempts = JoinSet::new();
    let mut last_error = None;
    let start = |attempts: &mut JoinSet<_>, addr: SocketAddr| {
        let attempt = connect(addr);
        attempts.spawn(async move { (addr, attempt.await) });
    };
    loop {
        if attempts.is_empty() {
            let Some(addr) = queue.next() else {
                return Err(last_error);
            };
            start(&mut attempts, addr);
        }
        let more = queue.len() > 0;
        tokio::select! {
            joined = attempts.join_next() => match joined {
                Some(Ok((addr, Ok(connected)))) => return Ok((connected, addr)),
                Some(Ok((_, Err(err)))) => {
                    last_error = Some(err);
                    if let Some(addr) = queue.next() {
                        start(&mut attempts, addr);
                    }
                }
                Some(Err(_)) | None => {}
            },
            _ = tokio::time::sleep(stagger), if more => {
                if let Some(addr) = queue.next() {
                    start(&mut attempts, addr);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};
    use std::sync::{Arc, Mutex};

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn families_interleave_ipv6_first() {
        let answer = ["10.0.0.1:1", "10.0.0.2:1", "[2001:db8::1]:1", "10.0.0.3:1"].map(addr);
        let ordered = interleave(answer.to_vec());
        let expected = ["[2001:db8::1]:1", "10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"].map(addr);
        assert_eq!(ordered, expected);
        assert!(interleave(Vec::new()).is_empty());
    }

    /// A fake network: each address answers after its delay with success or failure; `None`
    /// never answers (a silently dropped SYN). Records when each attempt started.
    fn network(
        behaviour: &'static [(&'static str, Option<(u64, bool)>)],
        started: Arc<Mutex<Vec<(SocketAddr, Duration)>>>,
        epoch: tokio::time::Instant,
    ) -> impl Fn(SocketAddr) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<SocketAddr>> + Send>>
    {
        move |target| {
            started.lock().unwrap().push((target, epoch.elapsed()));
            let plan = behaviour
                .iter()
                .find(|(a, _)| addr(a) == target)
                .and_then(|(_, b)| *b);
            Box::pin(async move {
                match plan {
                    None => std::future::pending().await,
                    Some((ms, ok)) => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        if ok {
                            Ok(target)
                        } else {
                            Err(Error::new(ErrorKind::ConnectionRefused, "refused"))
                        }
                    }
                }
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_ipv6_address_loses_to_ipv4_after_one_stagger() {
        static NET: [(&str, Option<(u64, bool)>); 2] = [
            ("[2001:db8::1]:443", None),
            ("192.0.2.1:443", Some((10, true))),
        ];
        let started = Arc::new(Mutex::new(Vec::new()));
        let epoch = tokio::time::Instant::now();
        let candidates = interleave(NET.map(|(a, _)| addr(a)).to_vec());
        let (won, _) = race(candidates, STAGGER, network(&NET, started.clone(), epoch))
            .await
            .expect("connected");
        assert_eq!(won, addr("192.0.2.1:443"));
        let started = started.lock().unwrap().clone();
        assert_eq!(started[0], (addr("[2001:db8::1]:443"), Duration::ZERO));
        assert_eq!(started[1], (addr("192.0.2.1:443"), STAGGER));
        assert_eq!(epoch.elapsed(), STAGGER + Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_attempt_starts_the_next_at_once_and_the_last_error_is_kept() {
        static NET: [(&str, Option<(u64, bool)>); 3] = [
            ("[2001:db8::1]:80", Some((5, false))),
            ("192.0.2.1:80", Some((5, false))),
            ("192.0.2.2:80", Some((5, false))),
        ];
        let started = Arc::new(Mutex::new(Vec::new()));
        let epoch = tokio::time::Instant::now();
        let candidates = interleave(NET.map(|(a, _)| addr(a)).to_vec());
        let error = race(candidates, STAGGER, network(&NET, started.clone(), epoch))
            .await
            .expect_err("all refused")
            .expect("an error");
        assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
        let starts: Vec<Duration> = started.lock().unwrap().iter().map(|(_, at)| *at).collect();
        let ms = Duration::from_millis;
        assert_eq!(starts, [ms(0), ms(5), ms(10)]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_fastest_of_overlapping_attempts_wins() {
        static NET: [(&str, Option<(u64, bool)>); 2] = [
            ("[2001:db8::1]:443", Some((1000, true))),
            ("192.0.2.1:443", Some((10, true))),
        ];
        let started = Arc::new(Mutex::new(Vec::new()));
        let epoch = tokio::time::Instant::now();
        let candidates = interleave(NET.map(|(a, _)| addr(a)).to_vec());
        let (won, _) = race(candidates, STAGGER, network(&NET, started, epoch))
            .await
            .expect("connected");
        assert_eq!(won, addr("192.0.2.1:443"));
        assert_eq!(epoch.elapsed(), STAGGER + Duration::from_millis(10));
    }

    #[tokio::test]
    async fn no_address_is_no_error() {
        let connect = |_| async { Ok::<_, Error>(()) };
        assert!(race(Vec::new(), STAGGER, connect)
            .await
            .unwrap_err()
            .is_none());
    }
}

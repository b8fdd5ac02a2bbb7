//! What every backend must do for the audit repository.

use super::*;

/// Baselines are versioned and the current ones listed.
pub async fn baselines_are_versioned_and_the_current_ones_listed<R: Repos>(store: &R) {
    assert_eq!(
        store
            .put_baseline("f", "", "a", "{\"v\":1}", 1)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .put_baseline("f", "", "a", "{\"v\":2}", 2)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .put_baseline("f", "d", "a", "{\"v\":3}", 3)
            .await
            .unwrap(),
        1
    );
    let mut cur: Vec<(String, i64, String)> = store
        .current_baselines()
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.device_id, b.version, b.body))
        .collect();
    cur.sort();
    assert_eq!(
        cur,
        [
            (String::new(), 2, "{\"v\":2}".to_owned()),
            ("d".to_owned(), 1, "{\"v\":3}".to_owned())
        ]
    );
    assert_eq!(store.baseline("f", "").await.unwrap().unwrap().version, 2);
}

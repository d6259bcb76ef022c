//! Sizes BODYSTRUCTURE did not give or gave wrong: settled or corrected by reading.

use super::*;

/// Message 1 of folder `F` with one part of `bs` whose stored bytes are `stored`.
fn single_part(bs: crate::mime::Part, stored: &[u8]) -> Arc<FakeStore> {
    let store = Arc::new(FakeStore::new());
    store.add_folder("F", true, 9);
    store.add_message(
        "F",
        1,
        FakeMessage {
            internal_date: 1_700_000_000,
            header: HEADER.to_vec(),
            structure: Ok(bs),
            sections: HashMap::from([("1".to_string(), stored.to_vec())]),
            unparseable: false,
        },
    );
    store
}

#[test]
fn nil_and_absurd_sizes_are_settled_by_reading() {
    let data = pseudo_random(300_000, 4);
    let enc = lines(&data, 76, "\r\n").concat();
    // NIL and absurd sizes (over 1 TiB) both come out of BODYSTRUCTURE as unknown.
    let cases = [
        ("7bit", data.clone(), data.clone()),
        ("base64", enc.clone(), data.clone()),
        ("8bit", data.clone(), data.clone()),
    ];
    for (cte, stored, want) in cases {
        let bs = crate::fs::fake::parts::leaf_of_unknown_size("application", "octet-stream", cte);
        let store = single_part(bs, &stored);
        let (fs, _rx) = mount(&store);
        settled_exact(&fs, "F/1/1", &want).unwrap();
    }
}

#[test]
fn a_wrong_size_of_a_part_served_as_stored_is_corrected() {
    let data = pseudo_random(300_000, 5);
    for claimed in [1000usize, 200_000, 299_999, 300_001, 400_000, 1_000_000] {
        let store = single_part(leaf("application", "zip", "7bit", claimed), &data);
        let (fs, rx) = mount(&store);
        let ino = path_ino(&fs, "F/1/1").unwrap();
        assert_eq!(fs.getattr(ino).unwrap().0.size, claimed as u64);
        // The end first (as stat says), then the whole file.
        check_read(&fs, ino, &data, claimed as u64 - 10, 4096).unwrap();
        settled_exact(&fs, "F/1/1", &data).unwrap();
        assert!(
            rx.try_iter().any(|i| i == Invalidation::Inode(ino)),
            "{claimed}"
        );
    }
}

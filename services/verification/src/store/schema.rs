//! The three tables (see the migrations for indexes and constraints).

diesel::table! {
    app_sessions (token_hash) {
        token_hash -> Text,
        hashed_guid -> Nullable<Text>,
        source -> SmallInt,
        tans_issued -> Integer,
        tan_redeemed_at -> Nullable<BigInt>,
        created_at -> BigInt,
        hashed_guid_dob -> Nullable<Text>,
        rapid_test -> SmallInt,
        uploads -> Integer,
        claimed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    tans (tan_hash) {
        tan_hash -> Text,
        session_hash -> Text,
        source -> SmallInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        reservation_id -> Nullable<Text>,
        reserved_until -> Nullable<BigInt>,
        redeemed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    tele_tans (tele_tan_hash) {
        tele_tan_hash -> Text,
        kind -> SmallInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    guid_tombstones (hashed_guid) {
        hashed_guid -> Text,
        held_until -> BigInt,
    }
}

//! Hand-written SQL that PostgreSQL keeps prepared.
//!
//! diesel prepares and caches its own typed queries, but never `sql_query`, `UPDATE` statements or
//! multi-row inserts: those are parsed and planned on every execution. [`prepared`] is for a fixed
//! SQL text with `$n` placeholders (typically a batch statement over `UNNEST` of array binds, so
//! that its text does not depend on the batch size): diesel's statement cache keys it by its text
//! and bind types, so each pooled connection prepares it once.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};
use diesel::{QueryResult, RunQueryDsl};
use std::marker::PhantomData;

/// A fixed SQL text and its binds, in placeholder order.
#[must_use = "queries are only executed when calling `load`, `get_result`, `execute` or similar"]
pub struct Prepared {
    sql: &'static str,
    binds: Vec<Box<dyn BindValue>>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("sql", &self.sql)
            .field("binds", &self.binds.len())
            .finish()
    }
}

/// `sql` with `$1`, `$2`, … placeholders, first used in that order (a placeholder may be used
/// again later); add the values with [`Prepared::bind`] in that order.
pub fn prepared(sql: &'static str) -> Prepared {
    Prepared {
        sql,
        binds: Vec::new(),
    }
}

impl Prepared {
    /// Binds the next placeholder to `value` as SQL type `ST`.
    pub fn bind<ST, V>(mut self, value: V) -> Self
    where
        ST: 'static,
        Pg: HasSqlType<ST>,
        V: ToSql<ST, Pg> + Send + 'static,
    {
        self.binds
            .push(Box::new(Typed::<ST, V>(value, PhantomData)));
        self
    }
}

trait BindValue: Send {
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

struct Typed<ST, V>(V, PhantomData<fn() -> ST>);

impl<ST, V> BindValue for Typed<ST, V>
where
    Pg: HasSqlType<ST>,
    V: ToSql<ST, Pg> + Send,
{
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, V>(&self.0)
    }
}

impl QueryFragment<Pg> for Prepared {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // The text is pushed piece by piece; at the first use of `$n` the n-th bind is pushed,
        // which renders as that same `$n`, so the SQL is exactly the text.
        let mut rest = self.sql;
        let mut bound = 0;
        while let Some(at) = rest.find('$') {
            let digits = rest[at + 1..]
                .find(|c: char| !c.is_ascii_digit())
                .map_or(rest.len() - at - 1, |n| n);
            out.push_sql(&rest[..at]);
            let token = &rest[at..at + 1 + digits];
            match token[1..].parse::<usize>() {
                Ok(n) if n == bound + 1 => {
                    let bind = self.binds.get(bound).ok_or_else(|| {
                        diesel::result::Error::QueryBuilderError(
                            format!("{token} has no bound value").into(),
                        )
                    })?;
                    bind.push(&mut out)?;
                    bound += 1;
                }
                Ok(n) if n <= bound => out.push_sql(token),
                Ok(_) => {
                    return Err(diesel::result::Error::QueryBuilderError(
                        format!("{token} is used before the placeholders below it").into(),
                    ));
                }
                // A `$` that is not a placeholder (no digits follow).
                Err(_) => out.push_sql(token),
            }
            rest = &rest[at + token.len()..];
        }
        out.push_sql(rest);
        if bound == self.binds.len() {
            Ok(())
        } else {
            Err(diesel::result::Error::QueryBuilderError(
                format!("{} values bound, {bound} placeholders", self.binds.len()).into(),
            ))
        }
    }
}

impl QueryId for Prepared {
    type QueryId = ();
    // No static id: the statement cache keys it by its SQL text and bind types.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared {
    type SqlType = Untyped;
}

impl<Conn> RunQueryDsl<Conn> for Prepared {}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::{Array, BigInt, Text};

    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Row {
        #[diesel(sql_type = Text)]
        word: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    /// The statement is prepared once per connection and reused: PostgreSQL lists it in
    /// `pg_prepared_statements` after the first run, and later runs with other batch sizes add
    /// no other statement.
    #[test]
    fn prepared_statements_are_kept_and_reused() {
        use diesel::Connection;
        for db in openwarn_testkit::databases() {
            if !db.url().starts_with("postgres") {
                continue;
            }
            let mut pg = diesel::PgConnection::establish(db.url()).unwrap();
            const SQL: &str = "SELECT w AS word, $1::int8 + $1::int8 AS n FROM UNNEST($2::text[]) AS w ORDER BY w";
            let count = |pg: &mut diesel::PgConnection| -> i64 {
                #[derive(diesel::QueryableByName)]
                struct C {
                    #[diesel(sql_type = BigInt)]
                    c: i64,
                }
                diesel::sql_query(
                    "SELECT count(*) AS c FROM pg_prepared_statements WHERE statement = 'SELECT w AS word, $1::int8 + $1::int8 AS n FROM UNNEST($2::text[]) AS w ORDER BY w'",
                )
                .get_result::<C>(pg)
                .unwrap()
                .c
            };
            assert_eq!(count(&mut pg), 0);
            for words in [vec!["b", "a"], vec!["c"], vec!["x", "y", "z"]] {
                let rows: Vec<Row> = prepared(SQL)
                    .bind::<BigInt, _>(21_i64)
                    .bind::<Array<Text>, _>(words.clone())
                    .load(&mut pg)
                    .unwrap();
                let mut sorted = words.clone();
                sorted.sort_unstable();
                let expected: Vec<Row> = sorted
                    .iter()
                    .map(|w| Row {
                        word: (*w).to_owned(),
                        n: 42,
                    })
                    .collect();
                assert_eq!(rows, expected);
                assert_eq!(count(&mut pg), 1, "one prepared statement, reused");
            }
        }
    }

    /// The text must use its placeholders in order and bind exactly as many values.
    #[test]
    fn placeholders_and_binds_must_match() {
        use diesel::query_builder::QueryBuilder;
        let render = |q: Prepared| {
            let mut builder = diesel::pg::PgQueryBuilder::default();
            q.to_sql(&mut builder, &Pg).map(|()| builder.finish())
        };
        assert_eq!(
            render(
                prepared("SELECT $1::int4 + $2::int4, $1::int4, '$x'")
                    .bind::<diesel::sql_types::Integer, _>(1)
                    .bind::<diesel::sql_types::Integer, _>(2)
            )
            .unwrap(),
            "SELECT $1::int4 + $2::int4, $1::int4, '$x'"
        );
        assert!(
            render(
                prepared("SELECT $2::int4, $1::int4")
                    .bind::<diesel::sql_types::Integer, _>(1)
                    .bind::<diesel::sql_types::Integer, _>(2)
            )
            .is_err()
        );
        assert!(
            render(prepared("SELECT $1::int4")).is_err(),
            "no value for $1"
        );
        assert!(
            render(prepared("SELECT 1").bind::<diesel::sql_types::Integer, _>(1)).is_err(),
            "a value for no placeholder"
        );
    }
}

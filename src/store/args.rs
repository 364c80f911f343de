//! Bound parameters as owned values, bound later to a query of either backend: a one-step write
//! on SQLite runs on another task, in one batch with others (`store::writers`), so its
//! parameters cannot borrow from the caller.

use sqlx::postgres::PgArguments;
use sqlx::query::QueryScalar;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Postgres, Sqlite};

/// One parameter's value.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
}

/// Parameters `$1`, `$2`, … in order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Args(Vec<Arg>);

macro_rules! bind_all {
    ($args:expr, $q:expr) => {
        $args.0.into_iter().fold($q, |q, a| match a {
            Arg::Text(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
            Arg::Bool(v) => q.bind(v),
        })
    };
}

impl Args {
    pub(crate) fn bind(mut self, value: impl Into<Arg>) -> Self {
        self.0.push(value.into());
        self
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn bound_pg<'q, O>(
        self,
        q: QueryScalar<'q, Postgres, O, PgArguments>,
    ) -> QueryScalar<'q, Postgres, O, PgArguments> {
        bind_all!(self, q)
    }

    pub(crate) fn bound_sqlite<'q, O>(
        self,
        q: QueryScalar<'q, Sqlite, O, SqliteArguments<'q>>,
    ) -> QueryScalar<'q, Sqlite, O, SqliteArguments<'q>> {
        bind_all!(self, q)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_string()))
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}

impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        Arg::Text(v.clone())
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

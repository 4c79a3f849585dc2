//! The holiday calendar: a year's holidays and make-up working days, and the form to
//! add, change or remove a day.

use chrono::{Datelike, NaiveDate};
use poem::{
    Response, handler,
    http::StatusCode,
    web::{Data, Form, Query},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use serde_json::json;

use super::with_status;
use crate::accounts::FieldError;
use crate::admin::{self, DayForm};
use crate::web::{Ctx, State, field_errors, internal, redirect};

#[derive(Deserialize)]
pub struct YearQuery {
    year: Option<i32>,
}

async fn render(
    ctx: &Ctx,
    state: &State,
    year: i32,
    form: &DayForm,
    errors: &[FieldError],
    status: StatusCode,
) -> poem::Result<Response> {
    let (Some(first), Some(last)) = (
        NaiveDate::from_ymd_opt(year, 1, 1),
        NaiveDate::from_ymd_opt(year, 12, 31),
    ) else {
        return Err(poem::Error::from_status(StatusCode::BAD_REQUEST));
    };
    let days = entity::calendar_day::Entity::find()
        .filter(entity::calendar_day::Column::Day.between(first, last))
        .order_by_asc(entity::calendar_day::Column::Day)
        .all(&state.db)
        .await
        .map_err(internal)?;
    let calendar = crate::store::load_calendar(&state.db)
        .await
        .map_err(internal)?;
    let months: Vec<_> = (1..=12u32)
        .filter_map(|m| {
            let start = NaiveDate::from_ymd_opt(year, m, 1)?;
            let working = start
                .iter_days()
                .take_while(|d| d.month() == m)
                .filter(|d| calendar.is_working_day(*d))
                .count();
            Some(json!({ "month": m, "working_days": working }))
        })
        .collect();
    let rows: Vec<_> = days
        .iter()
        .map(|d| {
            json!({
                "day": d.day.to_string(), "weekday": d.day.weekday().number_from_monday(),
                "kind": d.kind, "name": d.name,
            })
        })
        .collect();
    let resp = ctx.page(
        state,
        "pages/admin_calendar",
        "admin-calendar-title",
        json!({
            "year": year, "prev": year - 1, "next": year + 1, "days": rows, "months": months,
            "form": form, "errors": field_errors(ctx.lang, errors), "has_errors": !errors.is_empty(),
        }),
    )?;
    Ok(with_status(resp, status))
}

/// A year's calendar overrides (this year by default).
#[handler]
pub async fn show(
    ctx: Ctx,
    state: Data<&State>,
    Query(q): Query<YearQuery>,
) -> poem::Result<Response> {
    admin_only!(ctx);
    let this_year = crate::calendar::local_date(crate::store::now()).year();
    let year = q.year.unwrap_or(this_year).clamp(2000, 2100);
    render(&ctx, &state, year, &DayForm::default(), &[], StatusCode::OK).await
}

/// Adds, changes or removes one day's override.
#[handler]
pub async fn set(
    ctx: Ctx,
    state: Data<&State>,
    Form(form): Form<DayForm>,
) -> poem::Result<Response> {
    let me = admin_only!(ctx);
    match admin::set_calendar_day(&state.db, me, &form)
        .await
        .map_err(internal)?
    {
        Ok(day) => {
            ctx.session.flash("admin-flash-day-saved");
            Ok(redirect(&format!("/admin/calendar?year={}", day.year())))
        }
        Err(errors) => {
            let this_year = crate::calendar::local_date(crate::store::now()).year();
            render(
                &ctx,
                &state,
                this_year,
                &form,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

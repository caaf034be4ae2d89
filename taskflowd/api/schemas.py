"""Request and response bodies of the API as pydantic models (camelCase on the wire).

Request models are strict (no coercion: `"true"` is not a boolean) and forbid unknown
fields, so server-owned fields such as `id` or `role` cannot be smuggled in. Every string
and number is bounded. The same models produce the OpenAPI document. Every model builds
its validator on first use (`defer_build`), so start-up does not pay for all of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic.fields import ComputedFieldInfo, FieldInfo

from taskflowd.auth.emails import MAX_EMAIL_LENGTH, normalize_email
from taskflowd.auth.passwords import MAX_PASSWORD_BYTES, MIN_PASSWORD_BYTES, password_problems
from taskflowd.auth.service import MAX_NAME_LENGTH, TokenPair
from taskflowd.domain.entities import User
from taskflowd.domain.enums import Role


def _title(name: str, _info: FieldInfo | ComputedFieldInfo) -> str:
    return name.replace("_", " ").capitalize()


class RequestModel(BaseModel):
    """Base of JSON request bodies: strict types, camelCase names only, no unknown fields."""

    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        strict=True,
        frozen=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        field_title_generator=_title,
    )


class QueryModel(BaseModel):
    """Base of query strings: values arrive as text, so numbers are parsed from it."""

    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=False,
        field_title_generator=_title,
    )


class ResponseModel(BaseModel):
    """Base of response bodies: built from entities by field name, written in camelCase."""

    model_config = ConfigDict(
        defer_build=True,
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=True,
        serialize_by_alias=True,
        json_schema_serialization_defaults_required=True,
        field_title_generator=_title,
    )


def _password(value: str) -> str:
    problems = password_problems(value)
    if problems:
        raise ValueError(problems[0].message)
    return value


Email = Annotated[
    str, StringConstraints(max_length=MAX_EMAIL_LENGTH), AfterValidator(normalize_email)
]
NewPassword = Annotated[
    str,
    AfterValidator(_password),
    Field(
        description=f"{MIN_PASSWORD_BYTES} to {MAX_PASSWORD_BYTES} bytes in UTF-8",
        json_schema_extra={"minLength": MIN_PASSWORD_BYTES, "maxLength": MAX_PASSWORD_BYTES},
    ),
]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
# One line of text: no control characters (PostgreSQL cannot even store NUL in text).
LINE = r"^[^\x00-\x1f\x7f]*$"
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
Cursor = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=CURSOR_PATTERN)]
# A query parameter is absent or a string; it is never null, so the document says so.
CURSOR_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 512, "pattern": CURSOR_PATTERN}
Name = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_NAME_LENGTH, pattern=LINE
    ),
]


# --- requests -------------------------------------------------------------------
class RegisterRequest(RequestModel):
    email: Email
    password: NewPassword
    first_name: Name
    last_name: Name


class CreateUserRequest(RegisterRequest):
    role: Role = Role.USER
    is_active: bool = True


class UpdateUserRequest(RequestModel):
    """Only the fields given change; null leaves a field as it is."""

    role: Role | None = None
    is_active: bool | None = None
    first_name: Name | None = None
    last_name: Name | None = None


class LoginRequest(RequestModel):
    email: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_EMAIL_LENGTH, pattern=LINE)
    ]
    password: Secret


class RefreshRequest(RequestModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=LINE)]


class ChangePasswordRequest(RequestModel):
    current_password: Secret
    new_password: NewPassword


class ListQuery(QueryModel):
    limit: int = Field(default=50, ge=1, le=500)
    cursor: Annotated[Cursor | None, WithJsonSchema(CURSOR_SCHEMA)] = None


# --- responses ------------------------------------------------------------------
class UserOut(ResponseModel):
    id: str
    email: str
    first_name: str
    last_name: str
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        role=user.role,
        is_active=user.is_active,
        created_at=user.created_at,
        updated_at=user.updated_at,
    )


class UserList(ResponseModel):
    items: list[UserOut]
    next_cursor: str | None


class TokenPairOut(ResponseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the OAuth token type
    expires_in: int = Field(description="Seconds until the access token expires")


def token_pair_out(pair: TokenPair) -> TokenPairOut:
    return TokenPairOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in_s,
    )


class HealthOut(ResponseModel):
    status: Literal["ok"]


class OpenApiDocument(ResponseModel):
    """An OpenAPI 3.1 document (described loosely: it describes itself)."""

    model_config = ConfigDict(extra="allow")

    openapi: Literal["3.1.0"]
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


class FieldErrorOut(ResponseModel):
    field: str = Field(description="camelCase path of the bad field, e.g. payload.url")
    message: str


class Problem(ResponseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=False)

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine-readable error code")
    request_id: str
    errors: list[FieldErrorOut] = Field(
        default_factory=list, description="One entry per bad field; only on 422 responses"
    )

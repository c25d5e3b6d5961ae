"""API tokens (admin only): create (the secret is shown once), list, revoke; plus `me` for any valid token."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from agent.api.auth import Permission, permissions_of, require
from agent.api.context import ApiContext, get_ctx
from agent.api.errors import not_found
from agent.api.schemas import TokenCreate, TokenCreated, TokenList, WhoAmI
from agent.store import NotFound, TokenInfo

router = APIRouter(tags=["tokens"])
_admin = require(Permission.TOKENS)


@router.get(
    "/tokens/me",
    response_model=WhoAmI,
    summary="The calling token: its role and permissions (clients such as the console show controls by these)",
)
def whoami(token: TokenInfo = Depends(require(Permission.ROBOTS_READ))) -> WhoAmI:
    return WhoAmI(id=token.id, name=token.name, role=token.role, permissions=permissions_of(token.role))


@router.get("/tokens", response_model=TokenList, summary="List tokens (never their secrets)")
def list_tokens(ctx: ApiContext = Depends(get_ctx), _token=Depends(_admin)) -> TokenList:
    return TokenList(items=ctx.store.list_tokens())


@router.post("/tokens", response_model=TokenCreated, status_code=201, summary="Create a token")
def create_token(body: TokenCreate, ctx: ApiContext = Depends(get_ctx), _token=Depends(_admin)) -> TokenCreated:
    info, secret = ctx.store.create_token(body.name, body.role.value)
    return TokenCreated(**info.model_dump(), token=secret)


@router.delete("/tokens/{token_id}", response_model=TokenInfo, summary="Revoke a token (takes effect at once)")
def revoke_token(token_id: str, ctx: ApiContext = Depends(get_ctx), _token=Depends(_admin)) -> TokenInfo:
    try:
        return ctx.store.revoke_token(token_id)
    except NotFound:
        raise not_found("token", token_id) from None

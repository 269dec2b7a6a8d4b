export { startHttpServer, loadNativeUws, parseJsonBody } from './server';
export type { Route, Request, Reply, Handler, Principal, Scope, Authenticate, HttpServer, ServerOptions } from './server';
export { ApiError, Problems, problemFor, STATUS_BY_CODE, statusText } from './errors';
export type { FieldProblem, ApiErrorCode } from './errors';
export { paginate, decodeCursor, encodeCursor, parseLimit, DEFAULT_LIMIT, MAX_LIMIT } from './pagination';
export type { Page } from './pagination';

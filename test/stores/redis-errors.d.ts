/**
 * ioredis's declarations import `redis-errors`, which ships none: the tests that use ioredis's
 * client directly (to look at the keys the store writes) need this to type-check. The store
 * itself declares what it uses of the client and does not load ioredis's declarations.
 */
declare module 'redis-errors' {
  export class RedisError extends Error {}
  export class ReplyError extends RedisError {}
  export class ParserError extends RedisError {}
  export class AbortError extends RedisError {}
  export class InterruptError extends AbortError {}
}

"""What a task retries by itself: our own infrastructure failing, never a provider answer.

Provider answers are classified and recorded in the database (with their own backoff); a database
or Redis hiccup instead makes Celery run the same task again shortly (same task id, so a send task
that had claimed its part recognises itself and reconciles instead of sending twice).
"""

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, OperationalError

INFRASTRUCTURE_ERRORS = (OperationalError, DBAPIError, RedisConnectionError, RedisTimeoutError)

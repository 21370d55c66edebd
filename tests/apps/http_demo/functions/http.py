from backend import HttpRouter
from tests.apps.http_demo.functions.messages import getByAuthor, getByAuthorPathSuffix, postMessage

http = HttpRouter()

http.route(path="/postMessage", method="POST", handler=postMessage)

# Define additional routes
http.route(path="/getMessagesByAuthor", method="GET", handler=getByAuthor)

# Define a route using a path prefix
http.route(
    # Will match /getAuthorMessages/User+123 and /getAuthorMessages/User+234 etc.
    path_prefix="/getAuthorMessages/",
    method="GET",
    handler=getByAuthorPathSuffix,
)

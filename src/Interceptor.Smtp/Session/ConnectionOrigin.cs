using System.Net;

namespace Interceptor.Smtp.Session;

/// <summary>Who is behind a redirected connection and where it was going: what attribution found.</summary>
public sealed record ConnectionOrigin(uint Uid, string User, IPEndPoint Client, IPEndPoint OriginalDestination);

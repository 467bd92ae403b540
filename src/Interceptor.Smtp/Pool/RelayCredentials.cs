namespace Interceptor.Smtp.Pool;

/// <summary>
/// One site's login at the relays. Never printable: no public property carries the login or the password, and
/// <see cref="ToString"/> redacts, so neither can reach a log line, <c>status</c> or <c>--json</c> by accident;
/// only the AUTH encoder asks for them, by name.
/// </summary>
public sealed class RelayCredential : IEquatable<RelayCredential>
{
    private readonly string _login;
    private readonly string _password;

    internal RelayCredential(string user, string login, string password)
    {
        User = user;
        _login = login;
        _password = password;
    }

    /// <summary>The Unix user the line is for, or <c>*</c> for everyone without a line of their own.</summary>
    public string User { get; }

    /// <summary>For AUTH PLAIN/LOGIN only (over TLS).</summary>
    public string RevealLogin() => _login;

    /// <summary>For AUTH PLAIN/LOGIN only (over TLS).</summary>
    public string RevealPassword() => _password;

    /// <summary>Same login and password: a reused relay session authenticated with one may carry mail for the other.</summary>
    public bool Equals(RelayCredential? other) =>
        other is not null && string.Equals(_login, other._login, StringComparison.Ordinal) && string.Equals(_password, other._password, StringComparison.Ordinal);

    public override bool Equals(object? obj) => Equals(obj as RelayCredential);

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(_login);

    public override string ToString() => $"relay credentials of {User} (redacted)";
}

/// <summary>A credentials file that must not be used; the message names the file and the problem, never its secrets.</summary>
public sealed class RelayCredentialsException(string message) : Exception(message);

/// <summary>
/// <c>Relay.CredentialsFile</c>: one line per user, <c>USER LOGIN PASSWORD</c>, and <c>* LOGIN PASSWORD</c> for everyone
/// else; blank lines and lines starting with '#' are skipped. Readable by the daemon's user only: a file that group or
/// others may read, write or execute is refused, naming the file and its mode.
/// </summary>
public sealed class RelayCredentials
{
    /// <summary>The catch-all user name.</summary>
    public const string Everyone = "*";

    /// <summary>A credentials file is a few lines per site; a larger one is a mistake (e.g. the wrong file).</summary>
    public const long MaxBytes = 4L << 20;

    private readonly Dictionary<string, RelayCredential> _byUser;

    private RelayCredentials(Dictionary<string, RelayCredential> byUser) => _byUser = byUser;

    public static RelayCredentials Empty { get; } = new(new Dictionary<string, RelayCredential>(StringComparer.Ordinal));

    /// <summary>Users with a line of their own (not <c>*</c>), for check-config's summary: no logins, no passwords.</summary>
    public IReadOnlyList<string> Users => _byUser.Keys.Where(u => u != Everyone).Order(StringComparer.Ordinal).ToList();

    /// <summary>The user's own line, else the <c>*</c> line, else null (no AUTH for this user).</summary>
    public RelayCredential? For(string user) =>
        _byUser.TryGetValue(user, out var own) ? own : _byUser.GetValueOrDefault(Everyone);

    /// <summary>
    /// Parses the lines of Relay.CredentialsFile (read by the daemon as a private file); errors name the file and the
    /// line number, never the line (it holds a password).
    /// </summary>
    /// <exception cref="RelayCredentialsException">A bad line, or a second line for a user.</exception>
    public static RelayCredentials Parse(string path, string text)
    {
        var byUser = new Dictionary<string, RelayCredential>(StringComparer.Ordinal);
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd('\r').Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var fields = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length != 3)
            {
                throw new RelayCredentialsException(
                    $"{path}: line {i + 1}: expected USER LOGIN PASSWORD (three fields, no spaces inside one), found {fields.Length} fields");
            }

            if (!byUser.TryAdd(fields[0], new RelayCredential(fields[0], fields[1], fields[2])))
            {
                throw new RelayCredentialsException($"{path}: line {i + 1}: a second line for user {fields[0]}");
            }
        }

        return new RelayCredentials(byUser);
    }
}

using System.Collections;
using System.Globalization;
using Interceptor.Core.Events;

namespace Interceptor.Daemon.Intercept;

/// <summary>
/// The state of a session's logging scope: the JSON console formatter writes its fields (SessionId, Uid, User) into the
/// line's "Scopes" array, and its text as that entry's "Message". Built once per session; the fields are boxed once
/// and the text made on first use, so lines inside the session pay for neither again.
/// </summary>
public sealed class SessionLogScope : IReadOnlyList<KeyValuePair<string, object?>>
{
    private readonly KeyValuePair<string, object?>[] _fields;
    private readonly string _user;
    private string? _text;

    public SessionLogScope(long sessionId, uint uid, string user)
    {
        ArgumentNullException.ThrowIfNull(user);
        _user = user;
        _fields = [new("SessionId", sessionId), new("Uid", uid), new("User", user)];
    }

    public int Count => _fields.Length;

    public KeyValuePair<string, object?> this[int index] => _fields[index];

    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() => ((IEnumerable<KeyValuePair<string, object?>>)_fields).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    // Percent-encoded like the transaction line's user, so the text can never carry a second "uid=" or a line break.
    public override string ToString() => _text ??= string.Create(
        CultureInfo.InvariantCulture, $"session {_fields[0].Value} uid={_fields[1].Value} user={FieldText.PercentEncode(_user)}");
}

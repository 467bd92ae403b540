using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Interceptor.Daemon.Control;

/// <summary>The verbs the control socket answers; the CLI verbs of the same name send them.</summary>
public static class ControlVerbs
{
    public const string Status = "status";
    public const string Users = "users";
    public const string Log = "log";
    public const string Block = "block";
    public const string Unblock = "unblock";
    public const string Limits = "limits";
    public const string Held = "held";
    public const string Release = "release";
    public const string Delete = "delete";
    public const string Relays = "relays";
    public const string Relay = "relay";
    public const string Host = "host";
    public const string Domains = "domains";

    public static readonly IReadOnlyList<string> All = [Status, Users, Log, Block, Unblock, Limits, Held, Release, Delete, Relays, Relay, Host, Domains];
}

/// <summary>
/// What a failed request was about; the CLI turns it into its exit code (badRequest 2, the others 3).
/// Stable strings: panels that speak the JSON protocol switch on them.
/// </summary>
public static class ControlErrors
{
    /// <summary>The request itself is wrong: unknown verb, missing user or reason, unknown or exempt user, bad duration.</summary>
    public const string BadRequest = "badRequest";

    /// <summary>The peer is neither root nor in Control.AdminGroup.</summary>
    public const string PermissionDenied = "permissionDenied";

    /// <summary>The daemon could not do it (store or nft failed); nothing about the request was wrong.</summary>
    public const string Failed = "failed";
}

/// <summary>A refusal to carry out a request, with the text the admin reads.</summary>
public sealed class ControlException(string kind, string message) : Exception(message)
{
    public string Kind { get; } = kind;
}

/// <summary>
/// One request: a single JSON object on one line, e.g. <c>{"verb":"log","user":"alice","since":"1h","limit":20}</c>.
/// Unknown fields are refused, so a panel's typo ("usr") is an error instead of a silently broader answer.
/// </summary>
public sealed record ControlRequest
{
    /// <summary>Bounds a request line; the longest legitimate one (a block reason) is far below it.</summary>
    public const int MaxBytes = 16 * 1024;

    /// <summary>A block reason ends up in SMTP replies and log lines; it must stay one short line.</summary>
    public const int MaxReasonLength = 200;

    public const int MaxLimit = 10_000;

    public string Verb { get; init; } = "";

    /// <summary>A user name or a numeric uid.</summary>
    public string? User { get; init; }

    public string? Reason { get; init; }

    /// <summary>A duration such as "30m", "1h", "2d" (see <see cref="Durations"/>).</summary>
    public string? Since { get; init; }

    public int? Limit { get; init; }

    /// <summary>A held message's id (release, delete).</summary>
    public string? Id { get; init; }

    /// <summary>`relay` and `host`: <see cref="ControlActions.Burn"/> or <see cref="ControlActions.Restore"/>.</summary>
    public string? Action { get; init; }

    /// <summary>`relay`: the relay's name (Relay.Smarthosts[].Name).</summary>
    public string? Relay { get; init; }

    /// <summary>`domains`: add each domain's DNS report (DKIM, SPF, DMARC).</summary>
    public bool? Check { get; init; }

    /// <summary>Reads and checks a request line.</summary>
    /// <exception cref="ControlException">badRequest, saying what is wrong.</exception>
    public static ControlRequest Parse(ReadOnlySpan<byte> line)
    {
        ControlRequest? request;
        try
        {
            request = JsonSerializer.Deserialize<ControlRequest>(line, ControlJson.Strict);
        }
        catch (JsonException e)
        {
            throw new ControlException(ControlErrors.BadRequest, $"the request is not a valid JSON request object: {e.Message}");
        }

        if (request is null)
        {
            throw new ControlException(ControlErrors.BadRequest, "the request is not a valid JSON request object: null");
        }

        request.Validate();
        return request;
    }

    /// <summary>Checks what every verb needs; the CLI runs the same checks before connecting.</summary>
    /// <exception cref="ControlException">badRequest, saying what is wrong.</exception>
    public void Validate()
    {
        static ControlException Bad(string message) => new(ControlErrors.BadRequest, message);
        if (!ControlVerbs.All.Contains(Verb))
        {
            throw Bad($"unknown verb \"{Verb}\"; known: {string.Join(", ", ControlVerbs.All)}");
        }

        var needsUser = Verb is ControlVerbs.Block or ControlVerbs.Unblock;
        if (needsUser && string.IsNullOrWhiteSpace(User))
        {
            throw Bad($"{Verb} needs a user (a name or a numeric uid)");
        }

        if (User is not null && (User.Length is 0 or > 256 || User.Any(char.IsControl)))
        {
            throw Bad("the user must be a name or a numeric uid (1-256 characters, no control characters)");
        }

        ControlActions.Validate(this);
        if (Verb == ControlVerbs.Block)
        {
            CheckReason(Reason);
        }
        else if (Reason is not null && !ControlActions.TakesReason(this))
        {
            throw Bad($"{Verb} takes no reason");
        }

        if (User is not null && Verb is ControlVerbs.Status or ControlVerbs.Users)
        {
            throw Bad($"{Verb} takes no user");
        }

        ValidateHold();
        if (Check is not null && Verb != ControlVerbs.Domains)
        {
            throw Bad($"{Verb} takes no --check");
        }

        if (Since is not null)
        {
            if (Verb is not (ControlVerbs.Users or ControlVerbs.Log or ControlVerbs.Held))
            {
                throw Bad($"{Verb} takes no --since");
            }

            if (Durations.TryParse(Since) is null)
            {
                throw Bad(Durations.Problem(Since, "--since"));
            }
        }

        if (Limit is not null)
        {
            if (Verb is not (ControlVerbs.Users or ControlVerbs.Log))
            {
                throw Bad($"{Verb} takes no --limit");
            }

            if (Limit is < 1 or > MaxLimit)
            {
                throw Bad($"--limit: {Limit} is not between 1 and {MaxLimit}");
            }
        }
    }

    /// <summary>release and delete name one held message (ID) or every one of a user (--user), never both; only they take an id.</summary>
    private void ValidateHold()
    {
        if (Verb is ControlVerbs.Release or ControlVerbs.Delete)
        {
            if ((Id is null) == (User is null))
            {
                throw new ControlException(ControlErrors.BadRequest, $"{Verb} needs a held message's ID or --user USER (one of them)");
            }

            if (Id is not null && !Hold.HoldId.IsValid(Id))
            {
                throw new ControlException(ControlErrors.BadRequest, $"\"{Id}\" is not a held message's id (32 hex digits, as `held` lists them)");
            }
        }
        else if (Id is not null)
        {
            throw new ControlException(ControlErrors.BadRequest, $"{Verb} takes no message id");
        }
    }

    /// <summary>
    /// The reason is shown to the customer's mail client in the 550 reply and written into log lines, so it must
    /// be one line of printable ASCII: a CR or LF would let it inject reply lines.
    /// </summary>
    private static void CheckReason(string? reason)
    {
        if (string.IsNullOrWhiteSpace(reason))
        {
            throw new ControlException(ControlErrors.BadRequest, "block needs --reason TEXT: it is kept with the suspension and shown in the refusal the user's mail client gets");
        }

        CheckReasonText(reason);
    }

    /// <summary>Printable ASCII on one line, bounded: a reason goes into replies, log lines and alerts.</summary>
    internal static void CheckReasonText(string reason)
    {
        if (reason.Length > MaxReasonLength || reason.Any(c => c is < ' ' or > '~'))
        {
            throw new ControlException(
                ControlErrors.BadRequest,
                $"--reason must be printable ASCII on one line, at most {MaxReasonLength} characters: it goes into the SMTP reply the user's mail client gets");
        }
    }
}

/// <summary>
/// One response line: <c>{"ok":true,"verb":"status","data":{…},"error":null,"errorKind":null}</c> or
/// <c>{"ok":false,…,"error":"permission denied: …","errorKind":"permissionDenied"}</c>. Every field is always present.
/// </summary>
public sealed record ControlResponse(bool Ok, string Verb, JsonElement? Data, string? Error, string? ErrorKind)
{
    public static ControlResponse Success(string verb, object data) =>
        new(true, verb, JsonSerializer.SerializeToElement(data, data.GetType(), ControlJson.Options), null, null);

    public static ControlResponse Failure(string verb, string kind, string message) => new(false, verb, null, message, kind);

    /// <summary>The response as one line of UTF-8 JSON ending in LF.</summary>
    public byte[] ToLine() => [.. JsonSerializer.SerializeToUtf8Bytes(this, ControlJson.Options), (byte)'\n'];
}

/// <summary>
/// The serializer settings of the protocol: camelCase names and enum values (stable for scripts), ISO 8601 times,
/// and no HTML escaping (the output is read by people and JSON parsers, never pasted into a web page).
/// </summary>
public static class ControlJson
{
    public static readonly JsonSerializerOptions Options = Create(strict: false, indented: false);

    /// <summary>For requests: unknown fields are errors; unset fields are left out when writing one.</summary>
    public static readonly JsonSerializerOptions Strict = Create(strict: true, indented: false);

    /// <summary>For `--json` output meant for people as well as scripts.</summary>
    public static readonly JsonSerializerOptions Indented = Create(strict: false, indented: true);

    private static JsonSerializerOptions Create(bool strict, bool indented)
    {
        var options = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            WriteIndented = indented,
            UnmappedMemberHandling = strict ? JsonUnmappedMemberHandling.Disallow : JsonUnmappedMemberHandling.Skip,
            MaxDepth = 16,
            DefaultIgnoreCondition = strict ? JsonIgnoreCondition.WhenWritingNull : JsonIgnoreCondition.Never,
        };
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.CamelCase));
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }
}

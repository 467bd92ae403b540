namespace Interceptor.Smtp.Protocol;

/// <summary>The commands the session tells apart; anything else is <see cref="Unknown"/>.</summary>
public enum SmtpVerb
{
    Ehlo,
    Helo,
    Mail,
    Rcpt,
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    StartTls,
    Bdat,
    Auth,
    Unknown,
}

public static class SmtpVerbs
{
    /// <summary>The verb of an upper-cased command word (<see cref="CommandLine.Verb"/>).</summary>
    public static SmtpVerb Parse(string verb) => verb switch
    {
        "EHLO" => SmtpVerb.Ehlo,
        "HELO" => SmtpVerb.Helo,
        "MAIL" => SmtpVerb.Mail,
        "RCPT" => SmtpVerb.Rcpt,
        "DATA" => SmtpVerb.Data,
        "RSET" => SmtpVerb.Rset,
        "NOOP" => SmtpVerb.Noop,
        "QUIT" => SmtpVerb.Quit,
        "VRFY" => SmtpVerb.Vrfy,
        "HELP" => SmtpVerb.Help,
        "STARTTLS" => SmtpVerb.StartTls,
        "BDAT" => SmtpVerb.Bdat,
        "AUTH" => SmtpVerb.Auth,
        _ => SmtpVerb.Unknown,
    };
}

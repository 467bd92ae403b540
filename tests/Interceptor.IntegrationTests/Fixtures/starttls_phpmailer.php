<?php
// PHPMailer with SMTPSecure='tls' (STARTTLS required) and its default certificate verification; the test trusts
// its CA through `php -d openssl.cafile=CA`, never the host's store.
// Usage: php -d openssl.cafile=CA starttls_phpmailer.php HOST FROM TO
require '/usr/share/php/libphp-phpmailer/autoload.php';

use PHPMailer\PHPMailer\PHPMailer;
use PHPMailer\PHPMailer\Exception;

$mail = new PHPMailer(true);
try {
    $mail->isSMTP();
    $mail->Host = $argv[1];
    $mail->Port = 25;
    $mail->SMTPAuth = false;
    $mail->SMTPSecure = PHPMailer::ENCRYPTION_STARTTLS;
    $mail->Helo = 'client.test';
    $mail->Timeout = 60;
    $mail->setFrom($argv[2]);
    $mail->addAddress($argv[3]);
    $mail->Subject = 'phpmailer over starttls';
    $mail->Body = "sent by PHPMailer after STARTTLS\r\n";
    $mail->send();
    echo json_encode(['ok' => true]), "\n";
} catch (Exception $e) {
    echo json_encode(['ok' => false, 'error' => $mail->ErrorInfo]), "\n";
}

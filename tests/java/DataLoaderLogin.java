// A SOAP login the way Data Loader's WSC stack sends it — https only, the JVM's trust store
// (javax.net.ssl.trustStore), a gzip-compressed body, the endpoint with a trailing slash plus
// "/services/Soap/u/64.0/" — used by tests/serve.rs to prove the trust-store steps of
// docs/clients.md. Usage: java DataLoaderLogin.java ENDPOINT USERNAME PASSWORD_AND_TOKEN
import java.io.ByteArrayOutputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;

public class DataLoaderLogin {
    static String esc(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
    }

    public static void main(String[] args) throws Exception {
        String endpoint = args[0].endsWith("/") ? args[0] : args[0] + "/";
        String body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
            + "<env:Envelope xmlns:env=\"http://schemas.xmlsoap.org/soap/envelope/\""
            + " xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\""
            + " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"
            + "<env:Header><CallOptions xmlns=\"urn:partner.soap.sforce.com\">"
            + "<client>DataLoaderPartnerUI/67.0.0</client></CallOptions></env:Header>"
            + "<env:Body><m:login xmlns:m=\"urn:partner.soap.sforce.com\">"
            + "<m:username>" + esc(args[1]) + "</m:username>"
            + "<m:password>" + esc(args[2]) + "</m:password></m:login></env:Body></env:Envelope>";
        ByteArrayOutputStream gz = new ByteArrayOutputStream();
        try (GZIPOutputStream out = new GZIPOutputStream(gz)) {
            out.write(body.getBytes(StandardCharsets.UTF_8));
        }
        HttpRequest request = HttpRequest.newBuilder(URI.create(endpoint + "/services/Soap/u/64.0/"))
            .header("Content-Type", "text/xml; charset=UTF-8")
            .header("SOAPAction", "\"\"")
            .header("Content-Encoding", "gzip")
            .header("Accept-Encoding", "gzip")
            .header("Sforce-Call-Options", "client=DataLoaderPartnerUI/67.0.0")
            .POST(HttpRequest.BodyPublishers.ofByteArray(gz.toByteArray()))
            .build();
        HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
        HttpResponse<byte[]> response = client.send(request, HttpResponse.BodyHandlers.ofByteArray());
        byte[] bytes = response.body();
        if (response.headers().firstValue("Content-Encoding").orElse("").equals("gzip")) {
            bytes = new GZIPInputStream(new java.io.ByteArrayInputStream(bytes)).readAllBytes();
        }
        System.out.println("HTTP " + response.statusCode());
        System.out.println(new String(bytes, StandardCharsets.UTF_8));
    }
}
